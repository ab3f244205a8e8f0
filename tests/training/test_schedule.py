"""The learning-rate multiplier, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from cotdistill.training.schedule import lr_factor


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
