"""A checkpoint folder is data, never code: the ``latest`` pointer stays inside ``checkpoints/`` and the trainer
state is read with ``weights_only``."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from cotdistill.training import checkpoint as ckpt


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_latest_pointer_outside_checkpoints_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for name in ("/etc", "../elsewhere", "step-0000001/../../x", "step-1"):
        (tmp_path / "checkpoints" / "latest").write_text(name)
        with pytest.raises(ValueError, match="step-NNNNNNN"):
            ckpt.latest_checkpoint(tmp_path)


def test_trainer_state_that_would_run_code_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step = tmp_path / "checkpoints" / "step-0000002"
    step.mkdir(parents=True)
    torch.save({"state": _RunsCode()}, step / "trainer_state.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        ckpt.read_trainer_state(step)
    assert not (tmp_path / "pwned").exists()


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save({"rng": ckpt.rng_state()}, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_rotation_never_removes_the_checkpoint_it_just_wrote(tmp_path):
    """Higher-numbered folders left by an earlier run in the same directory must not push the new checkpoint out
    (a name sort with [:-keep] deleted it and left ``latest`` naming nothing)."""
    from tests.conftest import char_tokenizer, tiny_qwen

    tok = char_tokenizer()
    model = tiny_qwen(len(tok), hidden=16, layers=1)
    for stale in ("step-0000100", "step-0000110"):
        (tmp_path / "checkpoints" / stale).mkdir(parents=True)
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, model, tok, {"step": step}, keep=2)
        assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / f"step-{step:07d}"
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step-0000020", "step-0000030", "step-0000100", "step-0000110"]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A run folder holding step-0000010 and step-0000020, ``latest`` naming the second."""
    from tests.conftest import char_tokenizer, tiny_qwen

    root = tmp_path_factory.mktemp("ckpts")
    tok = char_tokenizer()
    model = tiny_qwen(len(tok), hidden=16, layers=1)
    for step in (10, 20):
        ckpt.save_checkpoint(root, step, model, tok, {"state": {"step": step}}, keep=2)
    return root


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _plant_zeros(path):
    """Every weight of the checkpoint's model, as zeros, in a file of its own."""
    from safetensors.torch import save_file

    weights = ckpt.read_weights(path.parent)
    save_file({k: torch.zeros_like(v) for k, v in weights.items()}, path)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason, expected", [
    (lambda c: _truncate(c / "model.safetensors"), "model.safetensors has", "step-0000010"),
    (lambda c: _truncate(c / "trainer_state.pt"), "trainer_state.pt has", "step-0000010"),
    (lambda c: (c / "trainer_state.pt").unlink(), "trainer_state.pt is missing", "step-0000010"),
    (lambda c: _flip_a_byte(c / "model.safetensors"), "SHA-256", "step-0000010"),
    (lambda c: (c / "manifest.json").unlink(), "no manifest.json", "step-0000010"),
    # a bad pointer: the newest intact folder is still step 20
    (lambda c: (c.parent / "latest").write_text("garbage\n"), "found 'garbage'", "step-0000020"),
    (lambda c: (c.parent / "latest").write_text("step-0000099"), "step-0000099 is damaged", "step-0000020"),
    # a file the resume or from_pretrained would read, which the manifest does not list (issue 26, case 9)
    (lambda c: _plant_zeros(c / "zeros.safetensors"), "zeros.safetensors is not in the manifest", "step-0000010"),
    (lambda c: _plant_zeros(c / "pytorch_model.bin"), "pytorch_model.bin is not in the manifest", "step-0000010"),
    (lambda c: (c / "model.safetensors.index.json").write_text("{}"), "model.safetensors.index.json is not",
     "step-0000010"),
])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one_and_says_so(two_checkpoints, tmp_path,
                                                                                    damage, reason, expected):
    import shutil

    root = tmp_path / "run"
    shutil.copytree(two_checkpoints, root)
    damage(root / "checkpoints" / "step-0000020")
    found, notes = ckpt.resumable_checkpoint(root)
    assert found == root / "checkpoints" / expected
    assert len(notes) == 1 and reason in notes[0], notes


def test_an_intact_latest_checkpoint_is_taken_without_notes(two_checkpoints):
    assert ckpt.resumable_checkpoint(two_checkpoints) == (two_checkpoints / "checkpoints" / "step-0000020", [])
    assert ckpt.damage(two_checkpoints / "checkpoints" / "step-0000010") is None


def test_no_intact_checkpoint_is_an_error_not_a_silent_restart(two_checkpoints, tmp_path):
    import shutil

    root = tmp_path / "run"
    shutil.copytree(two_checkpoints, root)
    for step in ("step-0000010", "step-0000020"):
        (root / "checkpoints" / step / "trainer_state.pt").unlink()
    with pytest.raises(ckpt.CheckpointError, match="no intact checkpoint.*resume: false"):
        ckpt.resumable_checkpoint(root)
    assert ckpt.resumable_checkpoint(tmp_path / "fresh") == (None, [])


def test_a_file_no_loader_reads_may_sit_beside_the_manifest(two_checkpoints, tmp_path):
    import shutil

    root = tmp_path / "run"
    shutil.copytree(two_checkpoints, root)
    (root / "checkpoints" / "step-0000020" / "notes.txt").write_text("lr looked high")
    assert ckpt.resumable_checkpoint(root) == (root / "checkpoints" / "step-0000020", [])


def test_a_weight_file_planted_in_the_last_checkpoint_is_skipped_and_the_resume_equals_the_straight_run(
        tmp_path, monkeypatch):
    """An unlisted ``*.safetensors`` was loaded over the verified weights: training resumed from zeros (loss 6.32
    instead of 0.93, exit 0)."""
    from safetensors.torch import load_file

    from cotdistill.training.loop import train
    from tests.training.helpers import tiny_config
    from tests.training.test_trainer import _killed_at

    cfg = {"optim.max_steps": 6, "save_every": 2}
    train(tiny_config(tmp_path, output_dir=str(tmp_path / "straight"), **cfg))
    _killed_at(tmp_path, monkeypatch, "resumed", 5, **cfg)
    _plant_zeros(tmp_path / "resumed" / "checkpoints" / "step-0000004" / "zeros.safetensors")
    resumed = train(tiny_config(tmp_path, output_dir=str(tmp_path / "resumed"), **cfg))
    assert resumed["resumed_from"].endswith("step-0000002")
    assert len(resumed["resume_notes"]) == 1, resumed["resume_notes"]
    assert "step-0000004 is damaged (zeros.safetensors is not in the manifest" in resumed["resume_notes"][0]
    a, b = (load_file(tmp_path / run / "final" / "model.safetensors") for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [[json.loads(line)["loss"] for line in open(tmp_path / run / "metrics.jsonl")]
              for run in ("straight", "resumed")]
    assert losses[0] == losses[1]
