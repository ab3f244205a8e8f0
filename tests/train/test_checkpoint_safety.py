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
