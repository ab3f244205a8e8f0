"""Seeing a run: TensorBoard and W&B get the metrics.jsonl figures, a loss curve is drawn, threads are set."""

from __future__ import annotations

import json
import logging

import pytest

from cotdistill.stages.train import run_training
from cotdistill.training.loop import Trainer, train
from cotdistill.training.reporting import ReportingError, check_report_to
from tests.training.helpers import tiny_config


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_gets_every_step_of_metrics_jsonl_and_a_loss_curve_is_drawn(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_training(tiny_config(tmp_path, report_to=["tensorboard"], eval_every=2, **{"optim.max_steps": 4}))
    run = tmp_path / "run"
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = {(e.step, round(e.value, 5)) for e in events.Scalars("train/loss")}
    assert logged == {(m["step"], round(m["loss"], 5)) for m in _metrics(run)}
    assert [e.step for e in events.Scalars("validation/loss")] == [2, 4]
    import matplotlib.image

    image = matplotlib.image.imread(run / "loss_curve.png")
    assert image.shape[0] > 200 and image.shape[1] > 400


def test_wandb_offline_run_gets_every_step_and_a_resume_continues_the_same_run(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged, ids, real_init = [], [], wandb.init

    def spying_init(**kwargs):  # the real offline run, with its log calls recorded on the way through
        run = real_init(**kwargs)
        ids.append(run.id)
        real_log = run.log
        run.log = lambda data, step: (logged.append((step, data["loss"])), real_log(data, step=step))
        return run

    monkeypatch.setattr(wandb, "init", spying_init)
    cfg = {"report_to": ["wandb"], "save_every": 2, "optim.max_steps": 2}
    train(tiny_config(tmp_path, **cfg))
    run = tmp_path / "run"
    assert logged == [(m["step"], m["loss"]) for m in _metrics(run)]
    run_id = (run / "wandb_run_id").read_text()
    files = list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    train(tiny_config(tmp_path, **{**cfg, "optim.max_steps": 4}, allow_config_change=True))  # resumed: same run
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    assert ids == [run_id, run_id]


@pytest.mark.parametrize(("targets", "message"), [(["tensorbord"], "report_to must list some of"),
                                                  (["mlflow"], "report_to must list some of")])
def test_unknown_targets_are_refused(targets, message):
    with pytest.raises(ReportingError, match=message):
        check_report_to(targets)


def test_a_target_that_is_not_installed_is_refused_before_weights_load(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ReportingError, match=r"pip install 'cotdistill\[logging\]'"):
        Trainer(tiny_config(tmp_path, report_to=["wandb"]))
    assert check_report_to(["none"]) == []


def test_threads_are_set_and_a_busy_machine_is_warned_about(monkeypatch, caplog):
    import os

    import torch

    from cotdistill.threads import available_cores, configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert configure_threads() == available_cores()
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        cores = available_cores()
        monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 0.0, 0.0))  # the cores are taken
        with caplog.at_level(logging.WARNING, logger="cotdistill"):
            configure_threads(cores)
        assert "the machine is busy" in caplog.text and "OMP_NUM_THREADS=1" in caplog.text
        with pytest.raises(ValueError, match="threads must be >= 1"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)
