"""Which checkpoint ``best/`` holds, and how often a run validates: ``best_metric`` and ``eval_every`` as a share."""

from __future__ import annotations

import json
import math

import pytest

from cotdistill.training.config import TrainConfig
from cotdistill.training.loop import record_best, train
from tests.training.helpers import make_data, tiny_config


@pytest.mark.parametrize("eval_every, steps_per_epoch, expected", [
    (0.25, 8, 2),  # 8 * 0.25 = 2
    (0.1, 10, 1),
    (0.1, 25, 2),  # 2.5 rounds down, as Lightning's int(batches * val_check_interval)
    (0.1, 29, 2),  # 2.9 too
    (0.1, 3, 1),  # 0.3 would round to 0: at least every step
    (50, 8, 50),  # a whole number is steps, whatever the epoch
    (0, 8, 0),  # only at the end
])
def test_eval_every_as_steps_or_a_share_of_an_epoch(eval_every, steps_per_epoch, expected):
    assert TrainConfig(eval_every=eval_every).validation_interval(steps_per_epoch) == expected


def test_eval_every_above_one_must_be_whole():
    with pytest.raises(ValueError, match="eval_every must be a whole number of steps, a share of an epoch in "
                                         r"\(0, 1\), or 0; got 2.5"):
        TrainConfig(eval_every=2.5)
    assert TrainConfig(eval_every=50.0).eval_every == 50 and isinstance(TrainConfig(eval_every=50.0).eval_every, int)
    with pytest.raises(ValueError, match="best_metric must be one of val_ce, val_loss, found 'loss'"):
        TrainConfig(best_metric="loss")


def test_a_quarter_epoch_validates_at_steps_2_4_6_8_of_an_8_step_epoch(tmp_path):
    make_data(tmp_path, n=20)  # 4 validation records (0.2), 16 training records in batches of 2: 8 steps
    summary = train(tiny_config(tmp_path, teacher=None, eval_every=0.25, **{
        "loss.distill_ratio": 0.0, "data.val_fraction": 0.2, "optim.batch_size": 2, "optim.max_steps": None}))
    assert summary["steps"] == 8 and summary["validation_every_steps"] == 2
    logs = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [log["step"] for log in logs if "val_ce" in log] == [2, 4, 6, 8]


# validations at steps 2, 4, 6 where CE and the objective disagree: CE is lowest at 4, the objective at 6
DISAGREEING = [(2, {"val_ce": 2.0, "val_kd": 2.0, "val_loss": 2.0}),
               (4, {"val_ce": 1.5, "val_kd": 3.1, "val_loss": 2.3}),  # 0.5 * 1.5 + 0.5 * 3.1
               (6, {"val_ce": 1.6, "val_kd": 2.4, "val_loss": 2.0 - 0.1})]  # 0.5 * 1.6 + 0.5 * 2.2 = 1.9


def _kept(history, metric, state=None):
    """The steps at which best/ is (re)written, and the final state."""
    state = state or {"best_val": math.inf, "best_by": None, "best_step": None}
    saved = []
    for step, val in history:
        state["step"] = step
        if record_best(state, val, metric):
            saved.append(step)
    return saved, state


def test_each_best_metric_keeps_its_own_step():
    saved, state = _kept(DISAGREEING, "val_ce")
    assert saved == [2, 4] and state["best_step"] == 4 and state["best_by"] == "val_ce" and state["best_val"] == 1.5
    saved, state = _kept(DISAGREEING, "val_loss")
    assert saved == [2, 6] and state["best_step"] == 6 and state["best_by"] == "val_loss"
    assert state["best_val"] == pytest.approx(1.9)


def test_val_loss_without_kd_on_validation_ranks_by_ce_and_no_validation_keeps_nothing():
    ce_only = [(step, {"val_ce": val["val_ce"]}) for step, val in DISAGREEING]  # a cache without the val records
    saved, state = _kept(ce_only, "val_loss")
    assert saved == [2, 4] and state["best_by"] == "val_ce"
    assert _kept([(2, {}), (4, {})], "val_ce")[0] == []


def test_a_best_in_another_figure_is_replaced_at_the_next_validation():
    """best_metric changed on resume: the old best's figure cannot be compared with the new one."""
    _, state = _kept(DISAGREEING, "val_loss")  # best: step 6, val_loss 1.9
    saved, state = _kept([(8, {"val_ce": 9.0, "val_loss": 9.0}), (10, {"val_ce": 8.0, "val_loss": 9.0})],
                         "val_ce", state)
    assert saved == [8, 10] and state["best_step"] == 10 and state["best_by"] == "val_ce"


@pytest.mark.parametrize("metric", ["val_ce", "val_loss"])
def test_a_kd_run_keeps_the_step_with_the_lowest_named_figure(tmp_path, metric):
    summary = train(tiny_config(tmp_path, eval_every=1, keep_best=True, best_metric=metric,
                                **{"optim.max_steps": 5, "optim.lr": 5e-2}))
    logs = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    figures = {log["step"]: log[metric] for log in logs}
    assert len(figures) == 5 and "val_kd" in logs[0]
    assert summary["best_checkpoint_by"] == metric
    assert summary["best_checkpoint_step"] == min(figures, key=lambda s: (figures[s], s))
    assert (tmp_path / "run" / "best").is_dir()
