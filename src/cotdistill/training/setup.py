"""The models of a training run, loaded once the data is known to be right: the student (gradient checkpointing
on request), and the teacher the config names (``TrainConfig.teacher_source``): none, the cache (opened before,
with the tokenizers), or the online model (checked, frozen, sharded on request)."""

from __future__ import annotations

import torch
from torch import nn

from cotdistill.compute import ModelShape
from cotdistill.distributed import DistInfo
from cotdistill.models import config_max_positions, load_model, model_max_positions
from cotdistill.teacher import Teacher
from cotdistill.teacher.online import OnlineTeacher
from cotdistill.training.config import TrainConfig
from cotdistill.training.objective import check_head_is_reproduced, final_logit_cap
from cotdistill.training.parallel import shard


def max_positions(cfg: TrainConfig, student: nn.Module | None, teacher: nn.Module | None) -> int | None:
    """The fewest positions of the student and the online teacher, read from their configs (no weights);
    ``student`` / ``teacher``: models passed in place of the config's names."""
    found = [config_max_positions(student.config) if student is not None else model_max_positions(cfg.student)]
    if cfg.teacher_source == "online":
        found.append(config_max_positions(teacher.config) if teacher is not None
                     else model_max_positions(cfg.teacher))
    limits = [n for n in found if n]
    return min(limits) if limits else None


def load_student(cfg: TrainConfig, given: nn.Module | None, device: torch.device) -> nn.Module:
    student = given.to(device) if given is not None else load_model(cfg.student, device)
    student.config.use_cache = False
    if cfg.gradient_checkpointing:  # recompute each layer's activations in the backward: memory for time
        # transformers 5 renamed it (the old name warns there and is the only one before)
        no_reentrant = {"use_reentrant": False}
        if hasattr(student, "activation_checkpointing_enable"):
            student.activation_checkpointing_enable(activation_checkpointing_kwargs=no_reentrant)
        else:
            student.gradient_checkpointing_enable(gradient_checkpointing_kwargs=no_reentrant)
    return student


def load_teacher(cfg: TrainConfig, cache: Teacher | None, given: nn.Module | None, device: torch.device,
                 dist: DistInfo, vocab: int) -> tuple[Teacher | None, ModelShape | None, int | None]:
    """(the teacher, its shape for FLOP counts, its logit rows): the cache or none (no shape: no teacher FLOPs;
    no rows: the cache checked its own against the tokenizer), or the online model, whose head is checked on the
    tokenizer's ``vocab`` before it is sharded."""
    if cfg.teacher_source != "online":
        return cache, None, None
    model = given.to(device) if given is not None else load_model(cfg.teacher, device)
    teacher = OnlineTeacher(model, final_logit_cap(model))  # in eval mode, frozen
    check_head_is_reproduced(model, "teacher", vocab)
    if dist.enabled and cfg.teacher_sharding == "shard":
        shard(teacher, model)
    return teacher, ModelShape.from_config(model.config), model.config.vocab_size


def uncovered_validation(cfg: TrainConfig) -> str:
    """The warning of a run whose teacher cache lacks the validation records: no KD is measured there."""
    return (f"the teacher cache {cfg.teacher_cache} does not hold the validation records (it holds those of the "
            "file it was built on; data.val_path is another file): validation reports val_ce only, no val_kd or "
            "val_loss, and keep_best keeps the checkpoint with the lowest val_ce"
            f"{' (best_metric val_loss cannot be measured)' if cfg.best_metric == 'val_loss' else ''}. To measure "
            "KD on validation, split it off the cached file with data.val_fraction")
