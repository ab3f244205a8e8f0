"""precision: auto | fp32 | bf16 — decided once per device, recorded in each checkpoint, resumable within itself."""

from __future__ import annotations

import json

import pytest
import torch

from cotdistill.config import load_config
from cotdistill.errors import TrainingError
from cotdistill.precision import cpu_bf16_flags, resolve_precision
from cotdistill.training.config import TrainConfig
from cotdistill.training.loop import train
from tests.training.helpers import killed_at, tiny_config
from tests.training.test_trainer import _assert_same, _weights

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
CPU = torch.device("cpu")


def test_auto_reads_the_cpus_bf16_units_and_chooses_fp32_without_them():
    assert cpu_bf16_flags(X86) == {"avx512_bf16"} and cpu_bf16_flags(ARM) == {"bf16"}
    assert cpu_bf16_flags(OLD_X86) == set() and cpu_bf16_flags("") == set()
    assert resolve_precision("auto", CPU, cpu_flags=cpu_bf16_flags(OLD_X86)) == "fp32"
    assert resolve_precision("auto", CPU, cpu_flags=cpu_bf16_flags(X86)) == "bf16"
    assert resolve_precision("auto", CPU, cpu_flags=cpu_bf16_flags(ARM)) == "bf16"
    # a precision that is set is used as set
    assert resolve_precision("bf16", CPU, cpu_flags=set()) == "bf16"
    assert resolve_precision("fp32", CPU, cpu_flags={"avx512_bf16"}) == "fp32"


def test_the_old_bf16_key_is_read_as_precision_unless_precision_is_set(caplog, tmp_path):
    assert load_config(TrainConfig, None, ["bf16=false"]).precision == "fp32"
    old = load_config(TrainConfig, None, ["bf16=true"])
    assert old.precision == "auto" and old.bf16 is None and "deprecated" in caplog.text
    # a config printed before precision existed holds bf16: true (then the default); an override of precision on it
    # is what the user asks for
    printed = tmp_path / "old.yaml"
    printed.write_text("bf16: true\nseed: 3\n")
    assert load_config(TrainConfig, str(printed), ["precision=fp32"]).precision == "fp32"
    assert load_config(TrainConfig, None, ["bf16=false", "precision=bf16"]).precision == "bf16"
    assert "ignored here" in caplog.text


def test_a_bf16_run_resumes_to_the_same_weights_and_records_its_precision(tmp_path, monkeypatch):
    cfg = {"optim.max_steps": 6, "save_every": 3, "precision": "bf16"}
    straight = train(tiny_config(tmp_path, **cfg, output_dir=str(tmp_path / "straight")))
    assert straight["precision"] == "bf16" and straight["precision_note"] == "bf16 (set)"
    killed_at(tmp_path, monkeypatch, 4, **cfg, output_dir=str(tmp_path / "resumed"))
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "step-0000003" / "trainer_state.pt",
                       weights_only=True)
    assert state["precision"] == "bf16"
    # another precision is another computation: refused unless allowed
    with pytest.raises(TrainingError, match="precision \\(computed in\\): bf16 -> fp32"):
        train(tiny_config(tmp_path, **{**cfg, "precision": "fp32"}, output_dir=str(tmp_path / "resumed")))
    resumed = train(tiny_config(tmp_path, **cfg, output_dir=str(tmp_path / "resumed")))
    assert resumed["resumed_from"].endswith("step-0000003")
    _assert_same(_weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final"), atol=0)
    # and bf16 is not fp32: the same run in fp32 trains other weights (the setting is applied)
    train(tiny_config(tmp_path, **{**cfg, "precision": "fp32"}, output_dir=str(tmp_path / "fp32")))
    fp32, bf16 = _weights(tmp_path / "fp32" / "final"), _weights(tmp_path / "straight" / "final")
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "straight" / "metrics.jsonl")]
    losses32 = [json.loads(line)["loss"] for line in open(tmp_path / "fp32" / "metrics.jsonl")]
    assert losses[0] == pytest.approx(losses32[0], rel=2e-2)  # the same objective, within bf16's rounding
