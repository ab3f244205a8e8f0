"""``cotdistill train``: a training run, then its loss curve drawn from ``metrics.jsonl`` (a report, which the
library that trains does not import)."""

from __future__ import annotations

import os
from pathlib import Path

from cotdistill.training import loop
from cotdistill.training.config import TrainConfig


def run_training(config: TrainConfig, given: loop.GivenObjects | None = None) -> dict:
    """Train ``config`` and return its run summary; the main process draws ``loss_curve.png`` beside it."""
    summary = loop.train(config, given)  # looked up now: tests count the runs through loop.train
    if os.environ.get("RANK", "0") == "0":
        from cotdistill.report.plots import loss_curve_plot  # matplotlib: imported only when a run ends
        from cotdistill.training.reporting import read_metrics

        out = Path(config.output_dir)
        loss_curve_plot(read_metrics(out / "metrics.jsonl"), out / "loss_curve.png")
    return summary
