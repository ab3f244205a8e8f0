"""What a resumed run may change: the config diff against a checkpoint's, the training rows' fingerprint, the
optimizer settings a checkpoint's state cannot follow, and the new values applied after an allowed change."""

from __future__ import annotations

import torch

from cotdistill.config import to_dict
from cotdistill.training.config import OptimConfig, RolloutConfig
from cotdistill.training.schedule import cosine_warmup_steps, lr_factor

# keys that change how a run is watched, not what it computes: they may differ between a run and its resumption
WATCH_ONLY_KEYS = {"progress", "resume", "allow_config_change", "log_every", "eval_every", "save_every", "keep_best",
                   "best_metric", "output_dir", "device", "report_to", "wandb_project", "threads"}

# a change to one of these re-stretches the learning-rate schedule of a resumed run
SCHEDULE_KEYS = ("optim.max_steps", "optim.epochs", "optim.warmup_steps", "optim.warmup_ratio", "optim.min_lr_ratio",
                 "optim.lr")

# keys added after checkpoints were first written, with the value that reproduces what a run did before the key
# existed: a checkpoint that lacks one is read as having it (else every old run would "change" to the new default)
ADDED_KEYS = {"optim.schedule": "cosine", "optim.decay_all_parameters": False, "optim.warmup_ratio": None,
              "loss.normalize": "tokens", "data.max_tokens": None, "data.val_size": None, "data.split_seed": None,
              "encode.keep_tail": 0, "loss.on_policy": 0.0, "rollout": to_dict(RolloutConfig()), "bf16": None,
              "precision": "auto"}


def read_old_keys(saved: dict) -> dict:
    """A checkpoint's config as today's keys: ``bf16: true|false`` (before ``precision``) is ``precision: auto``
    or ``fp32``, as ``TrainConfig`` reads it."""
    if saved.get("bf16") is None:
        return saved
    return {**saved, "precision": "auto" if saved["bf16"] else "fp32", "bf16": None}


def precision_change(saved: dict, precision: str) -> list[str]:
    """``precision: old -> new`` where a checkpoint was computed in another precision than this run resolves to.
    A checkpoint written before precisions were recorded computed in bf16 only on CUDA with ``bf16: true``."""
    old = saved.get("precision")
    if old is None:
        config = saved.get("config") or {}
        cuda = (config.get("device") == "cuda" or (config.get("device") in ("auto", None)
                                                   and torch.cuda.is_available()))
        old = "bf16" if config.get("bf16", True) and cuda else "fp32"
    return [] if old == precision else [f"precision (computed in): {old} -> {precision}"]


def config_changes(saved: dict | None, current: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every value that differs between a checkpoint's config and this run's; a key the
    checkpoint predates counts as its ``ADDED_KEYS`` value."""
    if saved is None:
        return []
    saved = read_old_keys(saved) if not prefix else saved
    changes = []
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in WATCH_ONLY_KEYS:
            continue
        old, new = saved.get(key, ADDED_KEYS.get(prefix + key)), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += config_changes(old, new, f"{prefix}{key}.")
        elif (list(old) if isinstance(old, tuple) else old) != (list(new) if isinstance(new, tuple) else new):
            changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return changes


def data_change(saved: dict, fingerprint: str, path) -> tuple[list[str], str | None]:
    """(``data records: old -> new`` where the checkpoint was trained on other rows than this run read, a note):
    a checkpoint written before the fingerprint existed resumes, with the note."""
    old = saved.get("data")
    if old is None:
        return [], (f"checkpoint {path} holds no fingerprint of its training data (written by an older cotdistill): "
                    "whether this run reads the same rows cannot be checked")
    return ([] if old == fingerprint else [f"data records: '{old[:12]}…' -> '{fingerprint[:12]}…'"]), None


def fixed_optim_changes(saved: dict, optim: OptimConfig, changes: list[str], total_steps: int) -> list[str]:
    """What a checkpoint's optimizer and scheduler state cannot follow, even with ``allow_config_change``: another
    schedule kind, another parameter grouping, and any change to the length or shape of a onecycle schedule
    (OneCycleLR lays out its phases over the whole run when it is built)."""
    old = (saved.get("config") or {}).get("optim", {})
    # a checkpoint written before these keys existed ran a cosine schedule with 1-D parameters undecayed
    fixed = [f"optim.{key}: {old.get(key, ADDED_KEYS['optim.' + key])!r} -> {getattr(optim, key)!r}"
             for key in ("schedule", "decay_all_parameters")
             if old.get(key, ADDED_KEYS["optim." + key]) != getattr(optim, key)]
    if optim.schedule == "onecycle" and not fixed:
        fixed = [c for c in changes if c.startswith(SCHEDULE_KEYS)]
        planned = saved["scheduler"].get("total_steps")
        if not fixed and planned != total_steps:
            fixed = [f"optimizer steps: {planned} -> {total_steps} (did the data change?)"]
    return fixed


def param_groups(params: list, optim: OptimConfig) -> list[dict]:
    """AdamW's parameter groups. By default matrices decay and 1-D parameters (biases, norm scales) do not: decay
    pulls a norm's scale towards 0 instead of regularising anything. ``decay_all_parameters``: one group, all
    decaying, as the paper's code (the group count is fixed for a run: a checkpoint's optimizer state follows it)."""
    if optim.decay_all_parameters:
        return [{"params": params, "weight_decay": optim.weight_decay}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def apply_optim_config(optimizer, scheduler, optim: OptimConfig, step: int, total_steps: int) -> None:
    """After an allowed config change: the optimizer's hyper-parameters come from the new config, not from the
    loaded state (which used to restore the old learning rate while config.yaml claimed the new one). A onecycle
    run's lr and beta1 stay the scheduler's (its schedule keys cannot change, see ``fixed_optim_changes``)."""
    fresh = param_groups([], optim)  # the same grouping as the run's: fixed_optim_changes has made sure of it
    for group, new in zip(optimizer.param_groups, fresh):
        beta1 = group["betas"][0] if optim.schedule == "onecycle" else optim.betas[0]
        group.update(weight_decay=new["weight_decay"], betas=(beta1, optim.betas[1]))
    if optim.schedule == "onecycle":
        return
    scheduler.base_lrs = [optim.lr for _ in optimizer.param_groups]
    factor = lr_factor(step, warmup_steps=cosine_warmup_steps(optim, total_steps), total_steps=total_steps,
                       min_lr_ratio=optim.min_lr_ratio)
    for group in optimizer.param_groups:
        group.update(initial_lr=optim.lr, lr=optim.lr * factor)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
