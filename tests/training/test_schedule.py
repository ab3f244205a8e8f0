"""The learning-rate multiplier, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from cotdistill.training.checkpoint import read_trainer_state
from cotdistill.training.loop import TrainingError, train
from cotdistill.training.schedule import build_scheduler, cosine_warmup_steps, lr_factor, warmup_share
from tests.training.helpers import tiny_config


@pytest.mark.parametrize("step, expected", [
    (0, 0.25), (1, 0.5), (3, 1.0),  # warm-up: (step + 1) / 4
    (4, 1.0),  # decay starts at the peak: cos(0) = 1
    (9, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 10))),  # halfway through 10 decay steps: 0.55
    (14, 0.1),  # the end of the decay: min_lr_ratio
    (20, 0.1),  # past the end it stays there
])
def test_warmup_then_cosine_to_the_floor(step, expected):
    assert lr_factor(step, warmup_steps=4, total_steps=14, min_lr_ratio=0.1) == pytest.approx(expected)


def test_halfway_is_the_mean_of_peak_and_floor():
    assert lr_factor(9, warmup_steps=4, total_steps=14, min_lr_ratio=0.1) == pytest.approx(0.55)


def test_no_warmup_starts_at_the_peak_and_one_step_runs_at_it():
    assert lr_factor(0, warmup_steps=0, total_steps=10, min_lr_ratio=0.0) == 1.0
    assert lr_factor(5, warmup_steps=0, total_steps=10, min_lr_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(0, warmup_steps=0, total_steps=1, min_lr_ratio=0.3) == 1.0


def test_a_run_that_is_all_warmup_ends_at_the_peak():
    assert lr_factor(5, warmup_steps=5, total_steps=5, min_lr_ratio=0.1) == 1.0
    assert lr_factor(0, warmup_steps=1, total_steps=3, min_lr_ratio=0.0) == 1.0


# --- options the truncation paper's code needs: warm-up as a share, OneCycle, decay on every parameter ----------

def _optim(**kw):
    from cotdistill.training.config import OptimConfig

    return OptimConfig(**kw)


def _dummy_optimizer(lr=1.0):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.999))


def _sequence(scheduler, optimizer, steps):
    """(lr, beta1) used by optimizer steps 0 .. steps-1 (the scheduler is stepped after each, as the trainer does)."""
    out = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        out.append((group["lr"], group["betas"][0]))
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_ratio_gives_the_warmup_share_and_the_cosine_warmup_steps():
    assert warmup_share(_optim(warmup_steps=4), 16) == 0.25  # 4 / 16
    assert warmup_share(_optim(warmup_steps=4, warmup_ratio=0.1), 16) == 0.1  # the ratio wins
    assert cosine_warmup_steps(_optim(warmup_steps=4), 16) == 4
    assert cosine_warmup_steps(_optim(warmup_ratio=0.25), 10) == 3  # 2.5 rounds half up
    assert cosine_warmup_steps(_optim(warmup_ratio=0.1), 16) == 2  # 1.6 -> 2


def test_onecycle_at_the_start_the_peak_and_the_end_by_hand():
    """lr 1e-3, 10 steps, warm-up share 0.3: the warm-up phase ends at step 0.3 * 10 - 1 = 2, the decay at 9.
    Start lr = 1e-3 / 25 = 4e-5, final lr = 4e-5 / 1e4 = 4e-9; a half-cosine between the phase ends:
    f(a, b, p) = b + (a - b) / 2 * (1 + cos(pi p)). Step 1 is halfway through the warm-up (p = 1/2):
    lr = 1e-3 + (4e-5 - 1e-3) / 2 = 5.2e-4, beta1 = 0.85 + (0.95 - 0.85) / 2 = 0.90."""
    optimizer = _dummy_optimizer()
    scheduler = build_scheduler(optimizer, _optim(lr=1e-3, schedule="onecycle", warmup_ratio=0.3), 10)
    seq = _sequence(scheduler, optimizer, 10)
    assert seq[0] == (pytest.approx(4e-5), pytest.approx(0.95))
    assert seq[1] == (pytest.approx(5.2e-4), pytest.approx(0.90))
    assert seq[2] == (pytest.approx(1e-3), pytest.approx(0.85))  # the peak lr, the lowest beta1
    # step 5.5 would be halfway through the decay (2 .. 9); step 6 is 4/7 of the way: cos(4 pi / 7)
    assert seq[6][0] == pytest.approx(4e-9 + (1e-3 - 4e-9) / 2 * (1 + math.cos(math.pi * 4 / 7)))
    assert seq[9] == (pytest.approx(4e-9), pytest.approx(0.95))  # the last step: lr near 0, beta1 back up
    assert optimizer.param_groups[0]["betas"][1] == 0.999  # beta2 is the config's, never cycled


@pytest.mark.parametrize("total, optim", [
    (23, {"warmup_ratio": 0.1}),  # the paper's share, with a warm-up that ends between steps (1.3)
    (12, {"warmup_steps": 3}),  # the share from warmup_steps: 3 / 12
    (1, {"warmup_ratio": 0.1}),  # a one-step run
])
def test_onecycle_is_torchs_onecycle_with_its_defaults_at_every_step(total, optim):
    optimizer = _dummy_optimizer()
    scheduler = build_scheduler(optimizer, _optim(lr=4e-6, schedule="onecycle", **optim), total)
    reference_optimizer = _dummy_optimizer()
    share = optim["warmup_ratio"] if "warmup_ratio" in optim else optim["warmup_steps"] / total
    reference = torch.optim.lr_scheduler.OneCycleLR(
        reference_optimizer, max_lr=4e-6, total_steps=total, pct_start=share, anneal_strategy="cos",
        cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0, final_div_factor=1e4,
        three_phase=False)
    assert _sequence(scheduler, optimizer, total) == _sequence(reference, reference_optimizer, total)


def test_onecycle_without_a_decay_phase_is_refused():
    from cotdistill.config import ConfigError

    with pytest.raises(ConfigError, match=r"optim.warmup_steps \(10\) must be shorter than the run \(4 optimizer"):
        build_scheduler(_dummy_optimizer(), _optim(schedule="onecycle", warmup_steps=10), 4)


def test_bad_schedule_values_are_refused():
    with pytest.raises(ValueError, match="schedule must be one of cosine, onecycle, found 'linear'"):
        _optim(schedule="linear")
    with pytest.raises(ValueError, match=r"warmup_ratio must be in \[0, 1\) or null, got 1.0"):
        _optim(warmup_ratio=1.0)


def test_cosine_schedule_from_build_scheduler_follows_lr_factor():
    optimizer = _dummy_optimizer(lr=2.0)  # the trainer builds AdamW with lr=optim.lr: the cosine multiplies it
    scheduler = build_scheduler(optimizer, _optim(lr=2.0, warmup_steps=4, min_lr_ratio=0.1), 14)
    lrs = [lr for lr, _ in _sequence(scheduler, optimizer, 14)]
    assert lrs == pytest.approx([2.0 * lr_factor(s, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
                                 for s in range(14)])
    assert lrs[0] == pytest.approx(0.5) and lrs[3] == pytest.approx(2.0) and lrs[9] == pytest.approx(1.1)


@pytest.mark.parametrize("decay_all", [False, True])
def test_decay_all_parameters_puts_1d_parameters_in_a_decaying_group(decay_all):
    from cotdistill.training.resume import param_groups
    from tests.conftest import tiny_qwen

    params = list(tiny_qwen(40, hidden=16, layers=1).parameters())
    vectors = {id(p) for p in params if p.ndim == 1}
    assert vectors  # norm scales: what the default rule leaves undecayed
    groups = param_groups(params, _optim(weight_decay=0.05, decay_all_parameters=decay_all))
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert len(decay_of) == len(params)  # every parameter in exactly one group
    assert {decay_of[i] for i in vectors} == ({0.05} if decay_all else {0.0})
    assert {d for i, d in decay_of.items() if i not in vectors} == {0.05}
    assert len(groups) == (1 if decay_all else 2)


# --- the schedule inside the trainer, across a kill and a resume --------------------------------------------------

ONECYCLE = {"optim.max_steps": 6, "save_every": 3, "optim.schedule": "onecycle", "optim.warmup_ratio": 0.3,
            "optim.weight_decay": 0.05, "optim.decay_all_parameters": True}


def _logged_lrs(run):
    import json

    return [json.loads(line)["lr"] for line in open(run / "metrics.jsonl")]


def _reference_onecycle(total=6, lr=1e-2, share=0.3):
    optimizer = _dummy_optimizer()
    return _sequence(torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=share),
                     optimizer, total)


def test_a_killed_and_resumed_onecycle_run_equals_a_straight_one(tmp_path, monkeypatch):
    from tests.training.test_trainer import _assert_same, _killed_at, _weights

    straight = train(tiny_config(tmp_path, output_dir=str(tmp_path / "straight"), **ONECYCLE))
    _killed_at(tmp_path, monkeypatch, "resumed", 4, **ONECYCLE)
    resumed = train(tiny_config(tmp_path, output_dir=str(tmp_path / "resumed"), **ONECYCLE))
    assert resumed["resumed_from"].endswith("step-0000003") and straight["steps"] == 6
    _assert_same(_weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final"), atol=0)
    reference = _reference_onecycle()
    assert _logged_lrs(tmp_path / "straight") == pytest.approx([lr for lr, _ in reference])
    assert _logged_lrs(tmp_path / "resumed") == _logged_lrs(tmp_path / "straight")
    # the checkpoint after 3 steps holds beta1 for step 3 (0-based): the cycle, not the config's betas[0]
    state = read_trainer_state(tmp_path / "resumed" / "checkpoints" / "step-0000003")
    assert [g["betas"][0] for g in state["optimizer"]["param_groups"]] == [pytest.approx(reference[3][1])]


def test_a_onecycle_run_keeps_its_schedule_on_resume_and_takes_other_allowed_changes(tmp_path, monkeypatch):
    from tests.training.test_trainer import _killed_at

    _killed_at(tmp_path, monkeypatch, "run", 4, **ONECYCLE)
    for change, said in (({"optim.lr": 1e-3}, "optim.lr: 0.01 -> 0.001"),
                         ({"optim.schedule": "cosine"}, "optim.schedule: 'onecycle' -> 'cosine'"),
                         ({"optim.decay_all_parameters": False}, "optim.decay_all_parameters: True -> False")):
        with pytest.raises(TrainingError, match=rf"cannot be resumed with this config \({said}\)"):
            train(tiny_config(tmp_path, output_dir=str(tmp_path / "run"), allow_config_change=True,
                              **{**ONECYCLE, **change}))
    summary = train(tiny_config(tmp_path, output_dir=str(tmp_path / "run"), allow_config_change=True,
                                **{**ONECYCLE, "optim.weight_decay": 0.1}))
    assert summary["config_changes"] == ["optim.weight_decay: 0.05 -> 0.1"]
    assert _logged_lrs(tmp_path / "run") == pytest.approx([lr for lr, _ in _reference_onecycle()])


def test_a_onecycle_run_whose_data_changed_length_is_not_resumed(tmp_path, monkeypatch):
    """With ``epochs`` the length comes from the data: a longer file under the same config would run past the end
    of the cycle laid out at the start (OneCycleLR raises there, deep in the run)."""
    from tests.training.helpers import make_data
    from tests.training.test_trainer import _killed_at

    cfg = {**ONECYCLE, "optim.max_steps": None, "save_every": 1}  # 12 training records / batch 4: 3 steps
    _killed_at(tmp_path, monkeypatch, "run", 2, **cfg)
    (tmp_path / "train.jsonl").unlink()
    make_data(tmp_path, n=32)  # 24 training records: 6 steps
    with pytest.raises(TrainingError, match=r"\(optimizer steps: 3 -> 6 \(did the data change\?\)\)"):
        train(tiny_config(tmp_path, output_dir=str(tmp_path / "run"), **cfg))


def test_a_onecycle_warmup_as_long_as_the_run_is_refused_at_the_start(tmp_path):
    from cotdistill.config import ConfigError

    with pytest.raises(ConfigError, match=r"optim.warmup_steps \(4\) must be shorter than the run \(4 optimizer"):
        train(tiny_config(tmp_path, **{"optim.schedule": "onecycle", "optim.warmup_steps": 4}))
    assert not (tmp_path / "run").exists()  # refused before anything was written
