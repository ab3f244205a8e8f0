"""A checkpoint folder is data, never code: the ``latest`` pointer stays inside ``checkpoints/`` and the trainer
state is read with ``weights_only``."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from cotdistill.train import checkpoint as ckpt


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
