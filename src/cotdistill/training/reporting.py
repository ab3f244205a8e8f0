"""Where a run's metrics go besides ``metrics.jsonl``: TensorBoard and Weights & Biases (``report_to``).

Both are optional extras (``pip install "cotdistill[logging]"``); a run that asks for one that is not installed
stops before any weights load. Only the main process reports.
"""

from __future__ import annotations

import numbers
import os
import secrets
from pathlib import Path

from cotdistill.errors import UserError

REPORTERS = ("tensorboard", "wandb", "none")


class ReportingError(UserError, ValueError):
    """A ``report_to`` target that is unknown or not installed."""


def check_report_to(report_to: list[str]) -> list[str]:
    """The targets to use (``none`` alone means none), or an error naming what is wrong."""
    unknown = [r for r in report_to if r not in REPORTERS]
    if unknown:
        raise ReportingError(f"report_to must list some of {', '.join(REPORTERS)}, got {unknown}")
    targets = [r for r in dict.fromkeys(report_to) if r != "none"]
    for target in targets:
        module = "torch.utils.tensorboard" if target == "tensorboard" else "wandb"
        try:
            __import__(module)
        except ImportError:
            raise ReportingError(f"report_to: {target} needs the {target} package: "
                                 f"pip install 'cotdistill[logging]' (or {target})") from None
    return targets


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, numbers.Number) and not isinstance(v, bool) and k != "step"}


class TensorBoardReporter:
    def __init__(self, out: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def log(self, step: int, metrics: dict) -> None:
        for key, value in _scalars(metrics).items():
            self.writer.add_scalar(f"train/{key}" if not key.startswith("val_") else f"validation/{key[4:]}",
                                   value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    """One W&B run per output folder: its id is kept in the folder so that a resumed run continues the same
    W&B run. ``WANDB_MODE=offline`` (as in the tests) writes it locally for a later ``wandb sync``."""

    def __init__(self, out: Path, config: dict, project: str) -> None:
        import wandb

        id_file = out / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        id_file.write_text(run_id)
        self.run = wandb.init(project=project, dir=str(out), id=run_id, resume="allow", config=config,
                              name=out.name, mode=os.environ.get("WANDB_MODE"))

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(_scalars(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class Reporters:
    """Every configured target behind one ``log`` / ``close``."""

    def __init__(self, targets: list[str], out: Path, config: dict, project: str = "cotdistill") -> None:
        self.targets = []
        for target in targets:
            if target == "tensorboard":
                self.targets.append(TensorBoardReporter(out))
            elif target == "wandb":
                self.targets.append(WandbReporter(out, config, project))

    def log(self, step: int, metrics: dict) -> None:
        for target in self.targets:
            target.log(step, metrics)

    def close(self) -> None:
        for target in self.targets:
            target.close()
