"""Learning-rate schedules: ``cosine`` (linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak) and
``onecycle`` (torch's ``OneCycleLR`` with its defaults, the schedule of the truncation paper's code)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from cotdistill.config import ConfigError

if TYPE_CHECKING:
    from cotdistill.training.config import OptimConfig


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr before optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_share(optim: OptimConfig, total_steps: int) -> float:
    """The share of the run's ``total_steps`` spent warming up: ``warmup_ratio`` when set, else
    ``warmup_steps / total_steps``."""
    return optim.warmup_ratio if optim.warmup_ratio is not None else optim.warmup_steps / total_steps


def cosine_warmup_steps(optim: OptimConfig, total_steps: int) -> int:
    """Warm-up steps of the cosine schedule: ``warmup_steps``, or ``warmup_ratio`` of the run rounded to the
    nearest step (halves up)."""
    if optim.warmup_ratio is None:
        return optim.warmup_steps
    return math.floor(optim.warmup_ratio * total_steps + 0.5)


def check_schedule(optim: OptimConfig, total_steps: int) -> None:
    """What only the run's length can tell: a onecycle warm-up from ``warmup_steps`` must leave a decay phase
    (OneCycleLR would divide by its length 0 at the last step)."""
    if optim.schedule == "onecycle" and warmup_share(optim, total_steps) >= 1.0:
        raise ConfigError(f"optim.warmup_steps ({optim.warmup_steps}) must be shorter than the run ({total_steps} "
                          "optimizer steps) for schedule onecycle: it needs a decay phase (set fewer warmup_steps, "
                          "or warmup_ratio)")


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler ``optim.schedule`` names, stepped once after every optimizer step.

    ``onecycle``: the lr used by optimizer step ``s`` (0-based) rises as a half cosine from ``lr / 25`` to ``lr``
    at step ``warmup_share · total_steps - 1``, then falls as a half cosine to ``lr / 25 / 1e4`` at step
    ``total_steps - 1``; beta1 moves the opposite way between 0.95 and 0.85. These are OneCycleLR's defaults
    (div_factor 25, final_div_factor 1e4, anneal_strategy cos, cycle_momentum with max/base momentum 0.95/0.85),
    the ones the paper's code left in place."""
    check_schedule(optim, total_steps)
    if optim.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optim.lr, total_steps=total_steps,
                                                   pct_start=float(warmup_share(optim, total_steps)))
    warmup = cosine_warmup_steps(optim, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup_steps=warmup, total_steps=total_steps,
                                       min_lr_ratio=optim.min_lr_ratio))
