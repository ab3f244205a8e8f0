"""The models of a training run: the student (gradient checkpointing on request), and the teacher source the config
names (``TrainConfig.teacher_source``): none, the online model (checked, frozen, sharded on request) or the cache.
Everything a user can get wrong is checked before any weights load."""

from __future__ import annotations

import torch
from torch import nn

from cotdistill.compute import ModelShape
from cotdistill.distributed import DistInfo
from cotdistill.errors import TrainingError
from cotdistill.models import (
    check_same_tokenizer,
    config_max_positions,
    load_model,
    load_tokenizer,
    model_max_positions,
)
from cotdistill.teacher import Teacher
from cotdistill.teacher.online import OnlineTeacher
from cotdistill.training.config import TrainConfig
from cotdistill.training.objective import check_head_is_reproduced, final_logit_cap
from cotdistill.training.parallel import shard


class TeacherSource:
    """One kind of teacher a run may read (``TrainConfig.teacher_source`` names it; :data:`TEACHER_SOURCES` maps
    the name to its class). The trainer asks it, in order: ``check`` (cheap, before the data is encoded),
    ``positions`` (the model's, to drop overlong rows), ``check_data`` (once the examples are known, before any
    weights load), then ``load``."""

    def __init__(self, cfg: TrainConfig, given: nn.Module | None = None) -> None:
        self.cfg, self.given = cfg, given

    def check(self, tokenizer) -> None:
        pass

    def positions(self) -> int | None:
        return None

    def check_data(self, tokenizer, data) -> None:
        """``data``: the run's ``PreparedData``."""

    def load(self, device: torch.device, dist: DistInfo, vocab: int) -> tuple[Teacher | None, ModelShape | None,
                                                                             int | None]:
        """(the teacher, its shape for FLOP counts, its logit rows): no shape means no teacher FLOPs, no rows
        that the tokenizer's are the ones read."""
        return None, None, None


class NoTeacher(TeacherSource):
    """Plain SFT: ``loss.distill_ratio`` 0."""


class OnlineTeacherSource(TeacherSource):
    """The teacher model, run beside the student on every batch."""

    def check(self, tokenizer) -> None:
        if self.given is not None:
            return
        if not self.cfg.teacher:
            raise TrainingError("loss.distill_ratio > 0 needs a teacher or a teacher_cache (or set "
                                "loss.distill_ratio: 0 for plain SFT)")
        # only the vocabulary is compared: the student's tokenizer renders every record for both models
        check_same_tokenizer(tokenizer, load_tokenizer(self.cfg.teacher, chat=False, role="teacher"))

    def positions(self) -> int | None:
        return (config_max_positions(self.given.config) if self.given is not None
                else model_max_positions(self.cfg.teacher))

    def load(self, device: torch.device, dist: DistInfo, vocab: int) -> tuple[Teacher | None, ModelShape | None,
                                                                             int | None]:
        """Its head is checked on the tokenizer's ``vocab`` before it is sharded."""
        model = self.given.to(device) if self.given is not None else load_model(self.cfg.teacher, device)
        teacher = OnlineTeacher(model, final_logit_cap(model))  # in eval mode, frozen
        check_head_is_reproduced(model, "teacher", vocab)
        if dist.enabled and self.cfg.teacher_sharding == "shard":
            shard(teacher, model)
        return teacher, ModelShape.from_config(model.config), model.config.vocab_size


class CachedTeacherSource(TeacherSource):
    """The distributions ``cotdistill teacher cache`` stored: opened (and verified) at ``check``, checked against
    the run's tokenizer, encoding and records at ``check_data``; it costs no teacher FLOPs."""

    def check(self, tokenizer) -> None:
        from cotdistill.teacher.cache import TeacherCache

        self.cache = TeacherCache.open(self.cfg.teacher_cache)

    def check_data(self, tokenizer, data) -> None:
        cfg = self.cfg
        self.cache.check_compatible(tokenizer, cfg.encode, cfg.data.path, data.examples, cfg.loss.temperature,
                                    teacher=cfg.teacher)

    def load(self, device: torch.device, dist: DistInfo, vocab: int) -> tuple[Teacher | None, ModelShape | None,
                                                                             int | None]:
        return self.cache, None, None


class CrossTokenizerSource(OnlineTeacherSource):
    """The teacher with its own tokenizer (``loss.cross_tokenizer``), as its model or as a cache built across
    the same two tokenizers: each record is aligned across the two renderings at ``check_data``, before any
    weights load."""

    def check(self, tokenizer) -> None:
        if self.given is not None:
            raise TrainingError("loss.cross_tokenizer needs the teacher by name (its tokenizer renders the records); "
                                "a teacher passed as a model object has none")
        if not self.cfg.teacher:
            raise TrainingError("loss.cross_tokenizer needs teacher: set to the teacher's name (its tokenizer renders "
                                "the records; with a teacher_cache its weights are not loaded)")
        self.teacher_tokenizer = load_tokenizer(self.cfg.teacher, role="teacher")
        self.cache = None
        if self.cfg.teacher_cache:
            from cotdistill.teacher.cache import TeacherCache

            self.cache = TeacherCache.open(self.cfg.teacher_cache)

    def positions(self) -> int | None:
        """None: the teacher reads its own rendering, not the student's rows; spans past its positions are left
        out when the records are aligned."""
        return None

    def check_data(self, tokenizer, data) -> None:
        from cotdistill.teacher.cross import SampleAligner, align_records, shared_vocabulary

        cfg = self.cfg
        self.alignments = align_records(tokenizer, self.teacher_tokenizer, data, model_max_positions(cfg.teacher))
        if not any(a.spans for a in self.alignments.values()):
            raise TrainingError(f"loss.cross_tokenizer: no supervised text of any record aligns between the student's "
                                f"and the teacher's ({cfg.teacher}) renderings; nothing to distil")
        self.shared = shared_vocabulary(tokenizer, self.teacher_tokenizer)
        self.samples = (SampleAligner(tokenizer, self.teacher_tokenizer, data.records) if cfg.loss.on_policy > 0
                        else None)
        if self.cache is not None:
            self.cache.check_compatible(tokenizer, cfg.encode, cfg.data.path, data.examples, cfg.loss.temperature,
                                        teacher=cfg.teacher, teacher_tokenizer=self.teacher_tokenizer)

    def load(self, device: torch.device, dist: DistInfo, vocab: int) -> tuple[Teacher | None, ModelShape | None,
                                                                             int | None]:
        """No logit rows are returned: the teacher's vocabulary is its own tokenizer's, not the student's."""
        from cotdistill.teacher.cross import CrossTokenizerTeacher

        if self.cache is not None:
            teacher = CrossTokenizerTeacher(None, cap=None, vocab=len(self.teacher_tokenizer),
                                            pad_id=self.teacher_tokenizer.pad_token_id,
                                            temperature=self.cfg.loss.temperature, mode=self.cfg.loss.cross_tokenizer,
                                            alignments=self.alignments, shared=self.shared, cache=self.cache)
            return teacher, None, None
        model = load_model(self.cfg.teacher, device)
        teacher = CrossTokenizerTeacher.of_model(model, final_logit_cap(model), self.teacher_tokenizer, self.cfg.loss,
                                                 self.alignments, self.shared, self.samples)
        check_head_is_reproduced(model, "teacher", teacher.vocab)
        return teacher, ModelShape.from_config(model.config), None


TEACHER_SOURCES: dict[str, type[TeacherSource]] = {"none": NoTeacher, "online": OnlineTeacherSource,
                                                    "cache": CachedTeacherSource}


def teacher_source(cfg: TrainConfig, given: nn.Module | None = None) -> TeacherSource:
    """The run's teacher source, by ``cfg.teacher_source``; ``given``: a teacher model passed in place of the
    config's name."""
    if cfg.teacher_source != "none" and cfg.loss.cross_tokenizer != "off":
        return CrossTokenizerSource(cfg, given)
    return TEACHER_SOURCES[cfg.teacher_source](cfg, given)


def max_positions(cfg: TrainConfig, student: nn.Module | None, teacher: TeacherSource) -> int | None:
    """The fewest positions of the student and the teacher, read from their configs (no weights); ``student``:
    a model passed in place of the config's name."""
    found = [config_max_positions(student.config) if student is not None else model_max_positions(cfg.student),
             teacher.positions()]
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


def uncovered_validation(cfg: TrainConfig) -> str:
    """The warning of a run whose teacher cache lacks the validation records: no KD is measured there."""
    return (f"the teacher cache {cfg.teacher_cache} does not hold the validation records (it holds those of the "
            "file it was built on; data.val_path is another file): validation reports val_ce only, no val_kd or "
            "val_loss, and keep_best keeps the checkpoint with the lowest val_ce"
            f"{' (best_metric val_loss cannot be measured)' if cfg.best_metric == 'val_loss' else ''}. To measure "
            "KD on validation, split it off the cached file with data.val_fraction")
