"""A run's checkpoints seen from the trainer: weights gathered under FSDP, the periodic checkpoint (weights,
optimizer, scheduler, RNG, counters, config, data fingerprint), ``best/`` and ``final/``, and resuming one.

The file formats and atomic writes are ``training.checkpoint``'s; what a resumed run may change is
``training.resume``'s. Every method that gathers weights is a collective under FSDP: all ranks call it."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cotdistill.config import to_dict
from cotdistill.distributed import DistInfo, barrier
from cotdistill.errors import TrainingError
from cotdistill.training import checkpoint as ckpt
from cotdistill.training.config import TrainConfig
from cotdistill.training.reporting import warn
from cotdistill.training.resume import (
    SCHEDULE_KEYS,
    apply_optim_config,
    config_changes,
    data_change,
    fixed_optim_changes,
    precision_change,
)


class RunCheckpoints:
    def __init__(self, cfg: TrainConfig, dist: DistInfo, student: nn.Module, loss_module: nn.Module, optimizer,
                 scheduler, tokenizer, sharded: bool, precision: str = "fp32") -> None:
        self.cfg, self.dist, self.out = cfg, dist, Path(cfg.output_dir)
        self.precision = precision  # what the run computes in, recorded in each checkpoint
        self.student, self.loss_module, self.tokenizer, self.sharded = student, loss_module, tokenizer, sharded
        self.optimizer, self.scheduler = optimizer, scheduler
        self.notes: list[str] = []  # said while resuming: what could not be checked
        self.changes: list[str] = []  # config keys and training rows that differ from the resumed checkpoint's

    def full_state_dict(self) -> dict | None:
        """Under FSDP, the unsharded weights gathered to CPU (all ranks must call this); otherwise ``None``,
        and ``save_pretrained`` reads the module's own weights."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.student, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self) -> dict:
        """The optimizer state to checkpoint; under FSDP gathered to full tensors keyed by parameter name (all ranks
        must call this), so a checkpoint is one set of files whatever the sharding."""
        if not self.sharded:
            return self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.loss_module, self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def save(self, state: dict, fingerprint: str) -> None:
        """A resumable checkpoint at ``state["step"]``."""
        weights, optimizer = self.full_state_dict(), self.optimizer_state()
        if self.dist.is_main:
            trainer_state = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                             "rng": ckpt.rng_state(), "state": dict(state), "world_size": self.dist.world_size,
                             "fsdp": self.sharded, "config": to_dict(self.cfg), "data": fingerprint,
                             "precision": self.precision}
            ckpt.save_checkpoint(self.out, state["step"], self.student, self.tokenizer, trainer_state,
                                 state_dict=weights)
        barrier(self.dist)

    def save_model(self, name: str) -> None:
        """The student as a loadable model folder, ``best`` or ``final``."""
        weights = self.full_state_dict()
        if self.dist.is_main:
            ckpt.save_pretrained_atomic(self.student, self.tokenizer, self.out / name, weights)

    def resume(self, path: Path, fingerprint: str, total_steps: int) -> dict:
        """Load a checkpoint written by a run of the same world size and sharding (every rank reads the files);
        returns its counters."""
        saved = ckpt.read_trainer_state(path)
        setting = (saved.get("world_size", 1), saved.get("fsdp", False))
        if setting != (self.dist.world_size, self.sharded):
            raise TrainingError(f"checkpoint {path} was written by {setting[0]} process(es) with fsdp={setting[1]}; "
                                f"this run has {self.dist.world_size} with fsdp={self.sharded}. The data position "
                                "and optimizer layout depend on both: resume with the same launch, or set "
                                "resume: false / a new output_dir")
        self._check_changes(saved, path, fingerprint, total_steps)
        self._load(path, saved)
        if self.changes:
            apply_optim_config(self.optimizer, self.scheduler, self.cfg.optim, saved["state"]["step"], total_steps)
        ckpt.set_rng_state(saved["rng"])
        return saved["state"]

    def _load(self, path: Path, saved: dict) -> None:
        weights = ckpt.read_weights(path)
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            full = StateDictOptions(full_state_dict=True, strict=False)
            ckpt.check_loaded(path, *set_model_state_dict(self.student, weights, options=full))
            set_optimizer_state_dict(self.loss_module, self.optimizer, saved["optimizer"], options=full)
        else:
            ckpt.check_loaded(path, *self.student.load_state_dict(weights, strict=False))
            self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])

    def _check_changes(self, saved: dict, path: Path, fingerprint: str, total_steps: int) -> None:
        """Set ``changes``; refuse them unless ``allow_config_change``, and refuse always what the optimizer state
        cannot follow."""
        changed_rows, note = data_change(saved, fingerprint, path)
        if note:
            self.notes.append(note)
            warn(note, self.dist.is_main)
        self.changes = (config_changes(saved.get("config"), to_dict(self.cfg)) + changed_rows
                        + precision_change(saved, self.precision))
        fixed = fixed_optim_changes(saved, self.cfg.optim, self.changes, total_steps)
        if fixed:
            raise TrainingError(f"{path} cannot be resumed with this config ({'; '.join(fixed)}): a run's schedule "
                                "kind and parameter groups, and a onecycle run's length, peak lr and warm-up, are "
                                "fixed when it starts. Resume with the checkpoint's values, or use a new output_dir")
        if self.changes and not self.cfg.allow_config_change:
            schedule = [c for c in self.changes if c.startswith(SCHEDULE_KEYS)]
            stretched = (" The learning-rate schedule would be recomputed for the new length from step "
                         f"{saved['state']['step']} on." if schedule else "")
            raise TrainingError(f"{self.out} holds a run with another config ({'; '.join(self.changes)})."
                                f"{stretched} Resume with the same config, set allow_config_change: true "
                                "(--allow-config-change) to continue with the new values, or use a new output_dir")
        for change in self.changes:
            warn(f"resuming with a changed config: {change}", self.dist.is_main)
