"""Runs written before the protocol keys existed still resume, and a NaN validation figure never becomes best/."""

from __future__ import annotations

import math

from cotdistill.config import to_dict
from cotdistill.training.config import TrainConfig
from cotdistill.training.loop import record_best
from cotdistill.training.resume import ADDED_KEYS, config_changes


def _without(config: dict, dotted: str) -> None:
    section, key = dotted.rsplit(".", 1) if "." in dotted else ("", dotted)
    target = config
    for part in filter(None, section.split(".")):
        target = target[part]
    del target[key]


def test_a_checkpoint_that_predates_the_added_keys_reports_no_change():
    current = to_dict(TrainConfig())
    saved = to_dict(TrainConfig())
    for key in ADDED_KEYS:
        _without(saved, key)
    assert config_changes(saved, current) == []


def test_an_added_key_set_away_from_its_old_behaviour_is_a_change():
    saved = to_dict(TrainConfig())
    _without(saved, "loss.normalize")
    current = to_dict(TrainConfig(loss={"normalize": "sequences"}))
    assert config_changes(saved, current) == ["loss.normalize: 'tokens' -> 'sequences'"]


def test_every_added_key_holds_its_old_behaviour_by_default():
    # the defaults are what runs did before the keys existed, so a default run resumes an old checkpoint unchanged
    current = to_dict(TrainConfig())
    for dotted, old in ADDED_KEYS.items():
        value = current
        for part in dotted.split("."):
            value = value[part]
        assert value == old, dotted


def test_a_nan_validation_figure_is_never_the_best():
    state = {"step": 1, "best_val": math.inf, "best_by": None, "best_step": None}
    assert not record_best(state, {"val_ce": float("nan")}, "val_ce")
    state["step"] = 2
    assert record_best(state, {"val_ce": 0.5}, "val_ce")
    assert (state["best_step"], state["best_val"]) == (2, 0.5)
    state["step"] = 3
    assert not record_best(state, {"val_ce": float("nan")}, "val_ce") and state["best_step"] == 2
