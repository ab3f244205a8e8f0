"""The distillation trainer: SFT and KD on truncated records, resumable, single- or multi-process.

Reduction contract: each micro-batch's loss is a *sum* over its supervised tokens; before the first backward of an
optimizer step the supervised tokens of all its micro-batches on all ranks are counted, and every micro-batch's
sum is divided by that one number. So batch 8 × accumulation 1, batch 1 × accumulation 8 and 2 processes × 4
give the same gradient. Under ``loss.normalize: sequences`` each token enters the sum times 1 / (its sequence's
supervised tokens) and the number counted is the sequences with a supervised token: the same invariances hold.

Data order: the length-grouped micro-batches of an epoch form one global list; optimizer step ``s`` consumes
micro-batches ``[s·G, (s+1)·G)`` with ``G = grad_accum × world_size``, rank ``r`` taking every ``world_size``-th
one. The position in the data is therefore the step number, which is what a checkpoint stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from cotdistill.compute import MemoryMonitor, ModelShape, training_flops
from cotdistill.config import save_config, to_dict
from cotdistill.data.batching import collate, length_grouped_batches
from cotdistill.data.encode import IGNORE_INDEX, EncodedExample, encode_records
from cotdistill.data.formats import load_records, source_name
from cotdistill.data.packing import collate_packed, pack_examples
from cotdistill.data.records import ReasoningRecord, apply_system_policy, repeated_positions
from cotdistill.data.split import Selection, split_records, templated_lengths, within_limit
from cotdistill.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from cotdistill.errors import UserError
from cotdistill.losses import combine, fused_objective_sums, sequence_weights, softcap
from cotdistill.models import (
    check_same_tokenizer,
    config_max_positions,
    load_model,
    load_tokenizer,
    model_max_positions,
    model_source,
    pick_device,
    read_chat_template,
    shared_vocab_size,
)
from cotdistill.outputs import claim_output, train_inputs
from cotdistill.sources import is_world, world_data
from cotdistill.teacher import Teacher
from cotdistill.teacher.online import OnlineTeacher
from cotdistill.threads import configure_threads, warn_if_oversubscribed
from cotdistill.training import checkpoint as ckpt
from cotdistill.training.config import DataConfig, OptimConfig, TrainConfig
from cotdistill.training.parallel import full_tensor, gradient_sync, is_sharded, shard, wrap_distributed
from cotdistill.training.reporting import Reporters, check_report_to
from cotdistill.training.schedule import build_scheduler, check_schedule, cosine_warmup_steps, lr_factor

logger = logging.getLogger("cotdistill.training")


class TrainingError(UserError, RuntimeError):
    """A run that cannot start or go on as configured (no teacher for KD, a non-finite loss, a changed config)."""


class StudentLoss(nn.Module):
    """Wraps the student so that DDP/FSDP see one forward that returns ``[objective, CE, KD]`` sums of a
    micro-batch: the objective ``combine(CE, KD)`` carries the gradient (computed chunk by chunk inside the forward,
    see ``losses.fused_objective_sums``), CE and KD are detached figures for the log. ``teacher``: what
    ``Teacher.inputs`` returned, as keyword arguments (DDP/FSDP see the tensors passed to a forward); none: KD 0."""

    def __init__(self, student: nn.Module, config, vocab: int) -> None:
        super().__init__()
        self.student, self.config, self.vocab = student, config, vocab

    def forward(self, input_ids, attention_mask, position_ids, targets_mask, targets, **teacher) -> torch.Tensor:
        # per-sequence token means: the loss weights each position by its sequence; the trainer divides by sequences
        weights = sequence_weights(targets_mask, position_ids) if self.config.normalize == "sequences" else None
        hidden = self.student.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                         position_ids=position_ids, use_cache=False).last_hidden_state
        # one-token shift: the hidden state at t predicts the label at t + 1
        selected = hidden[:, :-1][targets_mask]
        weight = self.student.get_output_embeddings().weight
        objective, ce, kd = fused_objective_sums(selected, weight, targets, self.config, vocab=self.vocab,
                                                 cap=final_logit_cap(self.student), weights=weights, **teacher)
        return torch.stack([objective, ce, kd])


# the validation figures, in the order the console shows them
VAL_FIGURES = ("val_loss", "val_ce", "val_kd")


def ranked_figure(val: dict[str, float], metric: str) -> str | None:
    """The figure ``keep_best`` ranks checkpoints by: ``best_metric``, or ``val_ce`` where that is ``val_loss`` and
    the teacher does not hold the validation records (then ``evaluate`` reports CE only; the run warned once at
    its start); ``None`` without validation records."""
    if not val:
        return None
    return metric if metric in val else "val_ce"


def record_best(state: dict, val: dict[str, float], metric: str) -> bool:
    """Whether the validation ``val`` at ``state["step"]`` is the best so far by ``metric``; if so ``state`` now
    says so (``best_val``, ``best_by``, ``best_step``). A best measured in another figure (``best_metric`` changed
    on resume) is not comparable: the first validation after the change replaces it."""
    figure = ranked_figure(val, metric)
    # a NaN figure is never a best: once recorded, nothing compares below it and best/ would stay that step
    if figure is None or not math.isfinite(val[figure]) or (figure == state.get("best_by")
                                                             and not val[figure] < state["best_val"]):
        return False
    state.update(best_val=val[figure], best_by=figure, best_step=state["step"])
    return True


def param_groups(params: list[nn.Parameter], optim: OptimConfig) -> list[dict]:
    """AdamW's parameter groups. By default matrices decay and 1-D parameters (biases, norm scales) do not: decay
    pulls a norm's scale towards 0 instead of regularising anything. ``decay_all_parameters``: one group, all
    decaying, as the paper's code (the group count is fixed for a run: a checkpoint's optimizer state follows it)."""
    if optim.decay_all_parameters:
        return [{"params": params, "weight_decay": optim.weight_decay}]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def final_logit_cap(model: nn.Module) -> float | None:
    """Gemma 2/3 soft-cap their logits after the output matrix; the loss applies the matrix itself, so it must
    apply the cap too."""
    return getattr(model.config, "final_logit_softcapping", None)


@torch.no_grad()
def check_head_is_reproduced(model: nn.Module, role: str, vocab: int) -> None:
    """The loss computes logits as ``softcap(last_hidden @ output_matrix.T)`` without calling the model's own
    forward (so no chunk's logits outlive it). A family that does more to its logits (a head bias as in Phi-2,
    Cohere's ``logit_scale``, Granite's ``logits_scaling``) would silently train another objective: compare the
    two on a few tokens and refuse the model if they differ."""
    was_training = model.training
    model.eval()
    ids = torch.arange(1, 9, device=model.device).remainder(vocab).unsqueeze(0)
    own = model(input_ids=ids, use_cache=False).logits[0, :, :vocab].float()
    hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0]
    ours = softcap((hidden @ model.get_output_embeddings().weight.T)[:, :vocab], final_logit_cap(model)).float()
    model.train(was_training)
    scale = own.abs().max().clamp_min(1.0)
    if not torch.allclose(ours, own, atol=1e-3 * scale.item(), rtol=1e-3):
        raise TrainingError(f"the {role} ({type(model).__name__}) computes its logits in a way cotdistill's loss "
                            f"does not reproduce (largest difference {(ours - own).abs().max().item():.3g}: a head "
                            "bias or a logit scale?); training it would optimise another objective")


def load_split_records(path, fmt: str = "auto", on_error: str = "raise", limit: int | None = None,
                       system: str = "drop", *, fields: dict[str, str] | None = None, split: str = "train",
                       subset: str | None = None) -> tuple[list[ReasoningRecord], str]:
    """Records of a ``world:`` spec, a file, folder or hub id, or rows in memory, with the system policy applied."""
    if is_world(path):
        return apply_system_policy(world_data(path, limit), system), "world"
    result = load_records(path, fmt, on_error=on_error, limit=limit, fields=fields, split=split, subset=subset)
    result.records = apply_system_policy(result.records, system)
    if result.skipped:  # on_error: skip is a choice, but never a silent one
        _warn(f"skipped {len(result.skipped)} bad rows of {source_name(path)} (data.on_error: skip); first: "
              f"{result.skipped[0]}", os.environ.get("RANK", "0") == "0")
    return result.records, result.format


def load_config_records(data: DataConfig, path=None, limit: int | None = None, *,
                        validation: bool = False) -> tuple[list[ReasoningRecord], str]:
    """``load_split_records`` with every reading option taken from the run's ``data`` config; ``validation``: the
    validation source, read from ``data.val_split`` (a hub dataset's validation split of the training id)."""
    split = (data.val_split or data.split) if validation else data.split
    return load_split_records(data.path if path is None else path, data.format, data.on_error, limit, data.system,
                              fields=data.fields, split=split, subset=data.subset)


def select_config_records(data: DataConfig, records: list[ReasoningRecord], tokenizer, *,
                          separate_val: bool) -> Selection:
    """Which of ``records`` (read from ``data.path`` with ``data.read_limit``) train and validate, by ``data``'s
    rules (``split_records``); ``separate_val``: validation is another file, so nothing is split off. The teacher
    cache stage calls this too, so that a cache holds exactly the records its run reads."""
    lengths = templated_lengths(tokenizer, records) if data.max_tokens is not None else None
    return split_records(len(records), lengths=lengths, max_tokens=data.max_tokens,
                         val_size=None if separate_val else data.val_size,
                         val_fraction=0.0 if separate_val else data.val_fraction, split_seed=data.split_seed,
                         max_records=data.max_records)


# keys that change how a run is watched, not what it computes: they may differ between a run and its resumption
WATCH_ONLY_KEYS = {"progress", "resume", "allow_config_change", "log_every", "eval_every", "save_every", "keep_best",
                   "best_metric", "output_dir", "device", "report_to", "wandb_project", "threads"}


# a change to one of these re-stretches the learning-rate schedule of a resumed run
SCHEDULE_KEYS = ("optim.max_steps", "optim.epochs", "optim.warmup_steps", "optim.warmup_ratio", "optim.min_lr_ratio",
                 "optim.lr")


# keys added after checkpoints were first written, with the value that reproduces what a run did before the key
# existed: a checkpoint that lacks one is read as having it (else every old run would "change" to the new default)
ADDED_KEYS = {"optim.schedule": "cosine", "optim.decay_all_parameters": False, "optim.warmup_ratio": None,
              "loss.normalize": "tokens", "data.max_tokens": None, "data.val_size": None, "data.split_seed": None}


def config_changes(saved: dict | None, current: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every value that differs between a checkpoint's config and this run's; a key the
    checkpoint predates counts as its ``ADDED_KEYS`` value."""
    if saved is None:
        return []
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


def records_fingerprint(*sources: list[ReasoningRecord]) -> str:
    """SHA-256 over every record read (the training file's, then a separate validation file's), in file order:
    the rows a checkpoint's data position counts through. A resume on other rows (shuffled, cut, edited) would
    go on at the next step of another run, so it is compared like a config key. One JSON line per record (JSON
    escapes newlines, so records cannot run into each other); computed once per run, as they are read."""
    digest = hashlib.sha256()
    for k, records in enumerate(sources):
        digest.update(f"\x1esource {k}\n".encode())
        for r in records:
            line = json.dumps([r.system, r.prompt, r.cot, r.answer, r.metadata], sort_keys=True, default=str)
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _warn(message: str, is_main: bool) -> None:
    """A warning through ``logging`` (the CLI prints it to stderr; with no logging set up Python prints warnings
    to stderr as well). Only the main process speaks."""
    if is_main:
        logger.warning("warning: %s", message)


def read_metrics(path: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (a line cut by a kill is skipped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the log lines of steps after the checkpoint being resumed (they will be run again) and a line cut by
    the kill, so that ``metrics.jsonl`` has each step once."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class GivenObjects:
    """What a Python caller passed already loaded instead of by name: models, tokenizer, data rows. ``None`` means
    "load what the config names"."""

    student: nn.Module | None = None
    teacher: nn.Module | None = None
    tokenizer: object | None = None
    data: object | None = None  # a datasets.Dataset or a list of row dicts
    val_data: object | None = None


def load_tokenizers(cfg: TrainConfig, given: GivenObjects | None = None):
    """The student's tokenizer and the teacher cache (or ``None``), with the pairing checked: the model paths exist,
    KD has a teacher, teacher and student share one vocabulary. Cheap: no weights are loaded."""
    given = given or GivenObjects()
    if given.tokenizer is not None:
        tokenizer = given.tokenizer
        if cfg.chat_template is not None:
            tokenizer.chat_template = read_chat_template(cfg.chat_template)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        if given.student is None:
            model_source(cfg.student, "student")  # its config.json, before its tokenizer and weights
        elif cfg.tokenizer is None:
            raise TrainingError("a student passed as a model object needs its tokenizer: pass tokenizer=… or set "
                                "the config's tokenizer to a path or hub id")
        tokenizer = load_tokenizer(cfg.tokenizer or cfg.student, chat_template=cfg.chat_template,
                                   role="tokenizer" if cfg.tokenizer else "student")
    cache = None
    if cfg.needs_teacher and cfg.teacher_cache:
        from cotdistill.teacher.cache import TeacherCache

        cache = TeacherCache.open(cfg.teacher_cache)
    elif cfg.needs_teacher and given.teacher is None:
        if not cfg.teacher:
            raise TrainingError("loss.distill_ratio > 0 needs a teacher or a teacher_cache (or set "
                                "loss.distill_ratio: 0 for plain SFT)")
        # only the vocabulary is compared: the student's tokenizer renders every record for both models
        check_same_tokenizer(tokenizer, load_tokenizer(cfg.teacher, chat=False, role="teacher"))
    return tokenizer, cache


def check_inputs(cfg: TrainConfig) -> None:
    """Every check a run makes before loading weights (models, pairing, data), for stages that start runs later:
    a sweep refuses a bad base config at once instead of failing each of its settings."""
    load_tokenizers(cfg)
    load_config_records(cfg.data, limit=cfg.data.read_limit)


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]
    indices: list[int]
    num_supervised: int
    num_sequences: int  # records with at least one supervised token

    @staticmethod
    def of(tensors: dict[str, torch.Tensor], examples: list[EncodedExample]) -> Batch:
        return Batch(tensors, [e.index for e in examples], sum(e.num_supervised for e in examples),
                     sum(e.num_supervised > 0 for e in examples))

    def divisor(self, normalize: str) -> int:
        """What this batch adds to the step's divisor under ``loss.normalize``: supervised tokens or sequences."""
        return self.num_sequences if normalize == "sequences" else self.num_supervised


class Trainer:
    def __init__(self, config: TrainConfig, given: GivenObjects | None = None) -> None:
        self.cfg = config
        self.given = given or GivenObjects()
        self.device = pick_device(config.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.out = Path(config.output_dir)
        # claimed before anything loads: a second run on the folder, or an output_dir holding one of this run's
        # inputs (student=runs/x/final output_dir=runs/x), is refused at once, not after the weights have loaded
        self._claim: contextlib.ExitStack | None = self._claim_output()
        try:
            self._set_up()
        except BaseException:
            self._release_output()
            raise

    def _set_up(self) -> None:
        config = self.cfg
        self.report_targets = check_report_to(config.report_to)
        if config.threads is not None:
            configure_threads(config.threads)
        else:  # the command line (or the caller) has set the threads already: only say if the cores are busy
            warn_if_oversubscribed(torch.get_num_threads())
        torch.manual_seed(config.seed)
        # everything a user can get wrong (paths, pairing, data) is checked before any weights are loaded
        self.tokenizer, cache = load_tokenizers(config, self.given)
        self._load_data()
        check_schedule(config.optim, self.total_steps)  # before any weights load
        self.eval_interval = config.validation_interval(self.steps_per_epoch)  # steps between validations
        if cache is not None:  # a cache that does not fit this run is refused before any weights load too
            cache.check_compatible(self.tokenizer, config.encode, config.data.path, self.examples,
                                   config.loss.temperature, teacher=config.teacher)
        self._load_models(cache)
        self._build_optimizer()
        self.resume_notes: list[str] = []
        self.config_changes: list[str] = []

    # --- set-up ------------------------------------------------------------------------------------------------
    def _load_models(self, cache: Teacher | None) -> None:
        cfg = self.cfg
        given = self.given
        self.student = given.student.to(self.device) if given.student is not None else load_model(cfg.student,
                                                                                                  self.device)
        self.student.config.use_cache = False
        if cfg.gradient_checkpointing:  # recompute each layer's activations in the backward: memory for time
            # transformers 5 renamed it (the old name warns there and is the only one before)
            no_reentrant = {"use_reentrant": False}
            if hasattr(self.student, "activation_checkpointing_enable"):
                self.student.activation_checkpointing_enable(activation_checkpointing_kwargs=no_reentrant)
            else:
                self.student.gradient_checkpointing_enable(gradient_checkpointing_kwargs=no_reentrant)
        teacher_vocab = self._load_teacher(cache)
        self.vocab = shared_vocab_size(self.student.config.vocab_size, teacher_vocab, len(self.tokenizer))
        check_head_is_reproduced(self.student, "student", self.vocab)
        self.loss_module = StudentLoss(self.student, cfg.loss, self.vocab)
        self.model = self.loss_module
        if self.dist.enabled:
            self.model = wrap_distributed(self.loss_module, cfg, self.device, self.dist)
        self.sharded = is_sharded(self.model)
        self.student_shape = ModelShape.from_config(self.student.config)

    def _load_teacher(self, cache: Teacher | None) -> int:
        """Set ``self.teacher``: the cache, the online teacher, or ``None`` (SFT). Returns the teacher's logit rows
        (the student's where no teacher model is loaded: the cache checked its own against the tokenizer)."""
        cfg = self.cfg
        self.teacher: Teacher | None = cache
        self.teacher_shape = None  # a cache costs no teacher FLOPs
        rows = self.student.config.vocab_size
        if cfg.needs_teacher and cache is None:
            given = self.given.teacher
            model = given.to(self.device) if given is not None else load_model(cfg.teacher, self.device)
            self.teacher = OnlineTeacher(model, final_logit_cap(model))  # in eval mode, frozen
            check_head_is_reproduced(model, "teacher", len(self.tokenizer))  # before it is sharded
            if self.dist.enabled and cfg.teacher_sharding == "shard":
                shard(self.teacher, model)
            self.teacher_shape, rows = ModelShape.from_config(model.config), model.config.vocab_size
        # a cache holds only the records it was built on: validation without them has no KD to report
        self.val_kd_known = self.teacher is None or self.teacher.covers(self.val_examples)
        if self.val_examples and not self.val_kd_known:
            _warn(f"the teacher cache {cfg.teacher_cache} does not hold the validation records (it holds those of "
                  "the file it was built on; data.val_path is another file): validation reports val_ce only, no "
                  "val_kd or val_loss, and keep_best keeps the checkpoint with the lowest val_ce"
                  f"{' (best_metric val_loss cannot be measured)' if cfg.best_metric == 'val_loss' else ''}. To "
                  "measure KD on validation, split it off the cached file with data.val_fraction", self.dist.is_main)
        return rows

    def _load_data(self) -> None:
        cfg, given = self.cfg, self.given
        records, self.data_format = load_config_records(cfg.data, given.data, cfg.data.read_limit)
        self.data_fingerprint = records_fingerprint(records)  # a separate validation file's rows are added below
        separate_val = bool(cfg.data.val_path) or given.val_data is not None
        if given.val_data is not None and cfg.data.val_size is not None:
            raise TrainingError("data.val_size splits validation off the training data, and validation rows were "
                                "passed (val_data=…): give only one")
        self.selection = select_config_records(cfg.data, records, self.tokenizer, separate_val=separate_val)
        source = source_name(given.data if given.data is not None else cfg.data.path)
        # every record is encoded with its index in the file, so a teacher cache built on the file fits either part
        train_indices = self.selection.train
        train_records = [records[i] for i in train_indices]
        encoded = encode_records(self.tokenizer, train_records, cfg.encode, source, indices=train_indices)
        self.examples, self.dropped = encoded.examples, encoded.dropped
        # duplicates are counted always and removed on request
        train_keys: set = set()
        repeated = {train_indices[k] for k in repeated_positions(train_records, train_keys)}
        self.data_notes = {"duplicate_records": len(repeated), **self.selection.notes()}
        if repeated and cfg.data.dedup:
            self.examples = [e for e in self.examples if e.index not in repeated]
        elif repeated:
            _warn(f"{len(repeated)} training records repeat an earlier one (set data.dedup: true to drop them)",
                  self.dist.is_main)
        val_records, val_indices, val_source = self._validation_records(records, source)
        val_examples = encode_records(self.tokenizer, val_records, cfg.encode, val_source,
                                      indices=val_indices).examples
        # never validate on a record trained on
        in_train = {val_indices[k] for k in repeated_positions(val_records, train_keys)}
        self.val_examples = [e for e in val_examples if e.index not in in_train]
        self.data_notes["validation_records_in_training"] = len(in_train)
        self._drop_overlong()
        self.data_notes["validation_records"] = len(self.val_examples)
        if not self.examples:
            too_long = (f", {len(self.selection.too_long)} longer than data.max_tokens {cfg.data.max_tokens}"
                        if cfg.data.max_tokens is not None else "")
            raise TrainingError(f"no training examples left ({len(self.dropped)} left no supervised token after "
                                f"truncation, {self.data_notes['overlong_records']} longer than the model's "
                                f"positions{too_long})")
        self.num_records = len(train_records)
        self._report_data()
        self._epochs = {0: self._epoch_batches(0)}
        self.batches_per_epoch = self._epochs[0]
        self.group = cfg.optim.grad_accum * self.dist.world_size
        self.steps_per_epoch = max(1, len(self.batches_per_epoch) // self.group)
        self.total_steps = cfg.optim.max_steps or max(1, math.ceil(cfg.optim.epochs * self.steps_per_epoch))

    def _validation_records(self, records: list[ReasoningRecord],
                            source: str) -> tuple[list[ReasoningRecord], list[int], str]:
        """The validation records, their indices in their file, and the file's name: split off the training file
        (``self.selection.val``, so a teacher cache built on it covers them), or another file (indices from 0),
        whose records longer than ``data.max_tokens`` are dropped as the training file's are."""
        cfg, given = self.cfg, self.given
        if given.val_data is None and not cfg.data.val_path:
            return [records[i] for i in self.selection.val], self.selection.val, source
        path = given.val_data if given.val_data is not None else cfg.data.val_path
        val_records, _ = load_config_records(cfg.data, path, validation=True)
        self.data_fingerprint = records_fingerprint(records, val_records)
        indices = list(range(len(val_records)))
        if cfg.data.max_tokens is not None:
            indices, too_long = within_limit(templated_lengths(self.tokenizer, val_records), cfg.data.max_tokens)
            self.data_notes["validation_longer_than_max_tokens"] = len(too_long)
        return [val_records[i] for i in indices], indices, source_name(path)

    def _report_data(self) -> None:
        """One line on what will be trained on, before any weights load; a warning when much was dropped (LSP 0.5
        with ``cotAns`` on long prompts once dropped 349 of 400 records, reported only in the final JSON)."""
        if not self.dist.is_main:
            return
        n, notes = self.num_records, self.data_notes
        deduped = notes["duplicate_records"] if self.cfg.data.dedup else 0
        lost = len(self.dropped) + notes["overlong_records"] + deduped
        tokens = sum(len(e) for e in self.examples)
        supervised = sum(e.num_supervised for e in self.examples)
        val_file = self.cfg.data.val_path or ("val_data" if self.given.val_data is not None else None)
        if "validation_longer_than_max_tokens" in notes:
            val_file += f" ({notes['validation_longer_than_max_tokens']} longer than data.max_tokens, dropped)"
        logger.info("data: %d training records (%s), %d kept: %d left no supervised token, %d longer than the "
                    "model, %d duplicates%s; %d validation; %.2f of the kept tokens supervised; %s", n,
                    self.data_format, len(self.examples), len(self.dropped), notes["overlong_records"],
                    notes["duplicate_records"], " (dropped)" if self.cfg.data.dedup else " (kept)",
                    len(self.val_examples), supervised / max(tokens, 1), self.selection.describe(val_file))
        if n and lost / n > 0.10:
            _warn(f"{lost} of {n} training records ({lost / n:.0%}) were dropped; see the line above for why "
                  "(for LSP with sections that start late, a smaller share of records has supervised tokens)",
                  True)

    def _drop_overlong(self) -> None:
        """Rows longer than the models' positions are dropped, counted and reported: trained past its positions a
        model silently misbehaves (a 307k-token record tried to allocate 94.7 GB). ``encode.max_seq_len``
        truncates them instead."""
        limits = [n for n in self._max_positions() if n]
        limit = min(limits) if limits else None
        self.data_notes["max_positions"] = limit
        if limit is None:
            self.data_notes["overlong_records"] = 0
            return
        overlong = [e.index for e in self.examples if len(e) > limit]
        self.examples = [e for e in self.examples if len(e) <= limit]
        self.val_examples = [e for e in self.val_examples if len(e) <= limit]
        self.data_notes["overlong_records"] = len(overlong)
        if overlong:
            _warn(f"dropped {len(overlong)} training records longer than the model's {limit} positions (first: "
                  f"record {overlong[0]}); set encode.max_seq_len to truncate them instead", self.dist.is_main)

    def _max_positions(self) -> list[int | None]:
        """The positions of the student and the online teacher, read from their configs (no weights loaded)."""
        cfg, given = self.cfg, self.given
        found = [config_max_positions(given.student.config) if given.student is not None
                 else model_max_positions(cfg.student)]
        if cfg.needs_teacher and not cfg.teacher_cache:
            found.append(config_max_positions(given.teacher.config) if given.teacher is not None
                         else model_max_positions(cfg.teacher))
        return found

    def _build_optimizer(self) -> None:
        o = self.cfg.optim
        params = [p for p in self.loss_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(param_groups(params, o), lr=o.lr, betas=o.betas)
        self.scheduler = build_scheduler(self.optimizer, o, self.total_steps)

    # --- data ----------------------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[list[int]]]:
        """The micro-batches of one epoch; each is a list of rows, each row a list of example indices (one
        example per row unless packing). Deterministic in (seed, epoch)."""
        lengths = [len(e) for e in self.examples]
        if not self.cfg.packing:
            batches = length_grouped_batches(lengths, self.cfg.optim.batch_size, seed=self.cfg.seed, epoch=epoch)
            return [[[i] for i in batch] for batch in batches]
        order = [i for batch in length_grouped_batches(lengths, 1, seed=self.cfg.seed, epoch=epoch) for i in batch]
        rows = pack_examples(lengths, order, self.cfg.pack_length)
        step = self.cfg.optim.batch_size
        return [rows[k:k + step] for k in range(0, len(rows), step)]

    def _micro_batch(self, global_index: int) -> Batch:
        n = len(self.batches_per_epoch)
        epoch, pos = divmod(global_index, n)
        if epoch not in self._epochs:
            self._epochs = {epoch: self._epoch_batches(epoch)}  # keep one epoch's order in memory
        rows = [[self.examples[i] for i in row] for row in self._epochs[epoch][pos]]
        if self.cfg.packing:
            return self._make_packed_batch(rows)
        return self._make_batch([row[0] for row in rows])

    def _make_batch(self, examples: list[EncodedExample]) -> Batch:
        tensors = collate(examples, self.tokenizer.pad_token_id, pad_to_multiple_of=self.cfg.pad_to_multiple_of)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        tensors["position_ids"] = None
        tensors["real_tokens"] = tensors["attention_mask"]
        return Batch.of(tensors, examples)

    def _make_packed_batch(self, rows: list[list[EncodedExample]]) -> Batch:
        tensors = collate_packed(rows, self.tokenizer.pad_token_id, pad_to_multiple_of=self.cfg.pad_to_multiple_of)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        tensors["attention_mask"] = None  # the position-id resets define the blocks
        examples = [e for row in rows for e in row]
        return Batch.of(tensors, examples)

    def _step_batches(self, step: int) -> list[Batch]:
        first = step * self.group
        return [self._micro_batch(first + k * self.dist.world_size + self.dist.rank)
                for k in range(self.cfg.optim.grad_accum)]

    # --- forward -------------------------------------------------------------------------------------------------
    def _autocast(self):
        enabled = self.cfg.bf16 and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _loss_sums(self, batch: Batch, model: nn.Module, with_teacher: bool = True) -> torch.Tensor:
        """``[objective, CE, KD]`` sums of a micro-batch; only the objective carries a gradient. KD is 0 without a
        teacher (none in this run, or ``with_teacher=False`` where it does not cover the batch)."""
        t = batch.tensors
        targets_all = t["labels"][:, 1:]
        mask = targets_all != IGNORE_INDEX
        with self._autocast():
            use = with_teacher and self.teacher is not None
            teacher = self.teacher.inputs(t, batch.indices, mask) if use else {}
            return model(t["input_ids"], t["attention_mask"], t["position_ids"], mask, targets_all[mask], **teacher)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation CE, KD and objective per supervised token (under ``loss.normalize: sequences``, the mean of
        each record's token mean, as in training); CE alone where the teacher (a cache) does not hold
        the validation records, since a KD of 0 there would be a figure nobody measured. The validation batches are
        split across ranks. Under FSDP every forward is a collective, so every rank runs the same number: a rank
        whose share has run out repeats a batch and discards it."""
        if not self.val_examples:  # no validation split: no figure, rather than a loss of 0.0 saved as "best"
            return {}
        self.loss_module.eval()
        size, world, rank = self.cfg.optim.batch_size, self.dist.world_size, self.dist.rank
        starts = list(range(0, len(self.val_examples), size))
        collective = self.sharded or is_sharded(self.teacher)
        end = world * math.ceil(len(starts) / world) if collective else len(starts)
        sums, n = torch.zeros(2, device=self.device), 0
        for k in range(rank, end, world):
            counted = k < len(starts)
            start = starts[k] if counted else starts[0]
            batch = self._make_batch(self.val_examples[start:start + size])
            micro = self._loss_sums(batch, self.loss_module, with_teacher=self.val_kd_known)[1:].float()
            if counted:
                sums += micro
                n += batch.divisor(self.cfg.loss.normalize)
        self.loss_module.train()
        total = torch.cat([sums, torch.tensor([float(n)], device=self.device)])
        all_reduce_sum(total, self.dist)
        n = max(total[2].item(), 1.0)
        ce, kd = total[0].item() / n, total[1].item() / n
        if not self.val_kd_known:  # neither KD nor the objective that mixes it in was measured
            return {"val_ce": ce}
        objective = combine(torch.tensor(ce), torch.tensor(kd), self.cfg.loss).item()
        return {"val_ce": ce, "val_kd": kd, "val_loss": objective}

    # --- the loop ------------------------------------------------------------------------------------------------
    def _claim_output(self) -> contextlib.ExitStack:
        claim = contextlib.ExitStack()
        claim.enter_context(claim_output(self.out, "output_dir", train_inputs(self.cfg), enabled=self.dist.is_main))
        return claim

    def _release_output(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None

    def train(self) -> dict:
        # held since __init__ and let go when training ends; a second train() on this trainer claims it again
        claim, self._claim = self._claim or self._claim_output(), None
        with claim:
            return self._train_locked()

    def _train_locked(self) -> dict:
        cfg, is_main = self.cfg, self.dist.is_main
        state = {"step": 0, "best_val": math.inf, "best_by": None, "best_step": None, "processed_tokens": 0,
                 "padded_tokens": 0, "supervised_tokens": 0, "flops": 0, "elapsed": 0.0}
        resumed_from, notes = ckpt.resumable_checkpoint(self.out) if cfg.resume else (None, [])
        self.resume_notes = notes
        for note in notes:
            _warn(note, is_main)
        if resumed_from is not None:
            saved_state = self._resume(resumed_from)
            state = {**state, **saved_state}  # a checkpoint may predate a key
            if "best_by" not in saved_state and math.isfinite(state["best_val"]):
                # a run from before best_metric ranked by the objective wherever validation measured it
                state["best_by"] = "val_loss" if self.val_kd_known else "val_ce"
            if is_main:
                _truncate_metrics(self.out / "metrics.jsonl", state["step"])
        if is_main:  # written once the config is known to be the one this run's weights follow
            save_config(cfg, self.out / "config.yaml")
        self._warm_up()
        monitor = MemoryMonitor(self.device).start()
        metrics_file = open(self.out / "metrics.jsonl", "a") if is_main else None
        reporters = Reporters(self.report_targets if is_main else [], self.out, to_dict(cfg), cfg.wandb_project)
        bar = tqdm(total=self.total_steps, initial=state["step"], desc="train", disable=not (is_main and cfg.progress))
        last_val: dict[str, float] = {}
        t_start = time.perf_counter() - state["elapsed"]
        # from_pretrained returns a model in eval mode: without this, dropout would stay off until the first
        # validation pass switched it on (and forever with eval_every: 0)
        self.loss_module.train()
        try:
            while state["step"] < self.total_steps:
                step = state["step"]
                t_step = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses (the scheduler moves it after)
                log = self._optimizer_step(step, state)
                state["step"] = step + 1
                state["elapsed"] = time.perf_counter() - t_start
                log.update(step=step + 1, lr=lr, elapsed=state["elapsed"],
                           tokens=state["processed_tokens"], supervised_tokens=state["supervised_tokens"],
                           tokens_per_s=log["step_tokens"] / max(time.perf_counter() - t_step, 1e-9),
                           peak_memory=monitor.peak_above_baseline())
                done = state["step"] == self.total_steps
                if (self.eval_interval and state["step"] % self.eval_interval == 0) or done:
                    last_val = self.evaluate()
                    log.update(last_val)
                    if last_val and is_main:
                        figures = "  ".join(f"{key[4:]} {last_val[key]:.4f}" for key in VAL_FIGURES if key in last_val)
                        logger.info("step %d/%d  validation: %s", state["step"], self.total_steps, figures)
                    if cfg.keep_best and record_best(state, last_val, cfg.best_metric):
                        weights = self._full_state_dict()
                        if is_main:
                            ckpt.save_pretrained_atomic(self.student, self.tokenizer, self.out / "best", weights)
                if is_main and not cfg.progress and (state["step"] % cfg.log_every == 0 or done):
                    # without a progress bar, a line every log_every steps says the run is alive and where it is
                    logger.info("step %d/%d  loss %.4f  ce %.4f  kd %.4f  lr %.2e  %.0f tokens/s", state["step"],
                                self.total_steps, log["loss"], log["ce"], log["kd"], log["lr"], log["tokens_per_s"])
                if is_main:
                    metrics_file.write(json.dumps(log) + "\n")
                    metrics_file.flush()
                    reporters.log(state["step"], log)
                    bar.set_postfix(loss=f"{log['loss']:.3f}", ce=f"{log['ce']:.3f}", kd=f"{log['kd']:.3f}")
                    bar.update(1)
                if cfg.save_every and state["step"] % cfg.save_every == 0 and not done:
                    self._save(state)
        finally:
            self.loss_module.eval()
            bar.close()
            reporters.close()
            if metrics_file is not None:
                metrics_file.close()
        peak = monitor.stop()
        return self._finish(state, peak, last_val, resumed_from)

    def _warm_up(self) -> None:
        """One tiny forward + backward before the memory baseline is taken, so that one-off runtime start-up costs
        (thread pools, allocator arenas) are not counted as training memory. No optimizer step: weights, optimizer
        state and RNG streams are untouched."""
        example = self.examples[0]
        n = min(len(example), 8)
        tiny = EncodedExample(example.input_ids[:n], example.input_ids[:n], example.segments[:n], example.index, n)
        batch = self._make_batch([tiny])
        # a cache holds no rows for this cut record (and is skipped); an online teacher runs and warms up too
        covered = self.teacher is not None and self.teacher.covers([tiny])
        self._loss_sums(batch, self.loss_module, with_teacher=covered)[0].backward()
        self.optimizer.zero_grad(set_to_none=True)

    def _optimizer_step(self, step: int, state: dict) -> dict:
        batches = self._step_batches(step)
        normalize = self.cfg.loss.normalize
        counts = torch.tensor([float(sum(b.num_supervised for b in batches)),
                               float(sum(b.divisor(normalize) for b in batches))], device=self.device)
        global_supervised, divisor = all_reduce_sum(counts, self.dist).tolist()
        # DDP averages gradients over ranks; scaling by world_size turns that average back into the global sum
        scale = self.dist.world_size / max(divisor, 1.0)
        sums = torch.zeros(2, device=self.device)
        bad_loss = None
        for k, batch in enumerate(batches):
            # gradients are synchronised across ranks only on the last micro-batch of the step
            with gradient_sync(self.model, enabled=k == len(batches) - 1):
                micro = self._loss_sums(batch, self.model)
                loss = micro[0] * scale
                if bad_loss is None and not torch.isfinite(loss):
                    bad_loss = f"non-finite loss {loss.item()} at step {step + 1}, micro-batch {k}, records " \
                               f"{batch.indices}"
                # backward even so: every rank must reach the gradient all-reduce, and the global gradient
                # norm below is what all ranks agree on to stop
                loss.backward()
            sums += micro[1:].detach().float()
            mask = batch.tensors["real_tokens"]
            state["processed_tokens"] += int(mask.sum())
            state["padded_tokens"] += mask.numel()
            state["flops"] += training_flops(self.student_shape, self.teacher_shape, *mask.shape,
                                             head_positions=batch.num_supervised)
        state["supervised_tokens"] += int(global_supervised)
        grad_norm = self._clip()
        if not math.isfinite(grad_norm):  # stop before the step is applied, so no checkpoint holds such weights
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError((bad_loss or f"non-finite gradient norm {grad_norm} at step {step + 1}")
                                + "; nothing of this step was applied or saved (lower optim.lr, check the data)")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        all_reduce_sum(sums, self.dist)
        n = max(divisor, 1.0)
        ce, kd = sums[0].item() / n, sums[1].item() / n
        return {"loss": combine(torch.tensor(ce), torch.tensor(kd), self.cfg.loss).item(), "ce": ce, "kd": kd,
                "grad_norm": grad_norm, "step_tokens": sum(int(b.tensors["real_tokens"].sum()) for b in batches)}

    def _parallel_kind(self) -> str:
        if not self.dist.enabled:
            return "single"
        return "fsdp" if self.sharded else "ddp"

    def _clip(self) -> float:
        """Clip to ``max_grad_norm`` and return the global gradient norm. With clipping off the norm is still
        computed (an infinite bound scales every gradient by exactly 1)."""
        params = [p for p in self.loss_module.parameters() if p.grad is not None]
        bound = self.cfg.optim.max_grad_norm if self.cfg.optim.max_grad_norm > 0 else math.inf
        return float(full_tensor(torch.nn.utils.clip_grad_norm_(params, bound)))

    def _full_state_dict(self) -> dict | None:
        """Under FSDP, the unsharded weights gathered to CPU (all ranks must call this); otherwise ``None``,
        and ``save_pretrained`` reads the module's own weights."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.student, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _optimizer_state(self) -> dict:
        """The optimizer state to checkpoint; under FSDP gathered to full tensors keyed by parameter name (all ranks
        must call this), so a checkpoint is one set of files whatever the sharding."""
        if not self.sharded:
            return self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.loss_module, self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _save(self, state: dict) -> None:
        weights, optimizer = self._full_state_dict(), self._optimizer_state()
        if self.dist.is_main:
            trainer_state = {"optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                             "rng": ckpt.rng_state(), "state": dict(state), "world_size": self.dist.world_size,
                             "fsdp": self.sharded, "config": to_dict(self.cfg), "data": self.data_fingerprint}
            ckpt.save_checkpoint(self.out, state["step"], self.student, self.tokenizer, trainer_state,
                                 state_dict=weights)
        barrier(self.dist)

    def _resume(self, path: Path) -> dict:
        """Load a checkpoint written by a run of the same world size and sharding; every rank reads the files."""
        saved = ckpt.read_trainer_state(path)
        setting = (saved.get("world_size", 1), saved.get("fsdp", False))
        if setting != (self.dist.world_size, self.sharded):
            raise TrainingError(f"checkpoint {path} was written by {setting[0]} process(es) with fsdp={setting[1]}; "
                                f"this run has {self.dist.world_size} with fsdp={self.sharded}. The data position "
                                "and optimizer layout depend on both: resume with the same launch, or set "
                                "resume: false / a new output_dir")
        self.config_changes = config_changes(saved.get("config"), to_dict(self.cfg)) + self._data_change(saved, path)
        self._check_fixed_optim(saved, path)
        if self.config_changes and not self.cfg.allow_config_change:
            schedule = [c for c in self.config_changes if c.startswith(SCHEDULE_KEYS)]
            stretched = (" The learning-rate schedule would be recomputed for the new length from step "
                         f"{saved['state']['step']} on." if schedule else "")
            raise TrainingError(f"{self.out} holds a run with another config ({'; '.join(self.config_changes)})."
                                f"{stretched} Resume with the same config, set allow_config_change: true "
                                "(--allow-config-change) to continue with the new values, or use a new output_dir")
        for change in self.config_changes:
            _warn(f"resuming with a changed config: {change}", self.dist.is_main)
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
        if self.config_changes:
            self._apply_optim_config(saved["state"]["step"])
        ckpt.set_rng_state(saved["rng"])
        return saved["state"]

    def _data_change(self, saved: dict, path: Path) -> list[str]:
        """``data records: old -> new`` where the checkpoint was trained on other rows than this run read (see
        ``records_fingerprint``); a checkpoint written before the fingerprint existed resumes, with a note."""
        old = saved.get("data")
        if old is None:
            note = (f"checkpoint {path} holds no fingerprint of its training data (written by an older cotdistill): "
                    "whether this run reads the same rows cannot be checked")
            self.resume_notes.append(note)
            _warn(note, self.dist.is_main)
            return []
        new = self.data_fingerprint
        return [] if old == new else [f"data records: '{old[:12]}…' -> '{new[:12]}…'"]

    def _check_fixed_optim(self, saved: dict, path: Path) -> None:
        """Refuse, even with ``allow_config_change``, what a checkpoint's optimizer and scheduler state cannot follow:
        another schedule kind, another parameter grouping, and any change to the length or shape of a onecycle
        schedule (OneCycleLR lays out its phases over the whole run when it is built)."""
        old = (saved.get("config") or {}).get("optim", {})
        o = self.cfg.optim
        # a checkpoint written before these keys existed ran a cosine schedule with 1-D parameters undecayed
        fixed = [f"optim.{key}: {old.get(key, ADDED_KEYS['optim.' + key])!r} -> {getattr(o, key)!r}"
                 for key in ("schedule", "decay_all_parameters")
                 if old.get(key, ADDED_KEYS["optim." + key]) != getattr(o, key)]
        if o.schedule == "onecycle" and not fixed:
            fixed = [c for c in self.config_changes if c.startswith(SCHEDULE_KEYS)]
            planned = saved["scheduler"].get("total_steps")
            if not fixed and planned != self.total_steps:
                fixed = [f"optimizer steps: {planned} -> {self.total_steps} (did the data change?)"]
        if fixed:
            raise TrainingError(f"{path} cannot be resumed with this config ({'; '.join(fixed)}): a run's schedule "
                                "kind and parameter groups, and a onecycle run's length, peak lr and warm-up, are "
                                "fixed when it starts. Resume with the checkpoint's values, or use a new output_dir")

    def _apply_optim_config(self, step: int) -> None:
        """After an allowed config change: the optimizer's hyper-parameters come from the new config, not from the
        loaded state (which used to restore the old learning rate while config.yaml claimed the new one). A onecycle
        run's lr and beta1 stay the scheduler's (its schedule keys cannot change, see ``_check_fixed_optim``)."""
        o = self.cfg.optim
        fresh = param_groups([], o)  # the same grouping as the run's: _check_fixed_optim has made sure of it
        for group, new in zip(self.optimizer.param_groups, fresh):
            beta1 = group["betas"][0] if o.schedule == "onecycle" else o.betas[0]
            group.update(weight_decay=new["weight_decay"], betas=(beta1, o.betas[1]))
        if o.schedule == "onecycle":
            return
        self.scheduler.base_lrs = [o.lr for _ in self.optimizer.param_groups]
        factor = lr_factor(step, warmup_steps=cosine_warmup_steps(o, self.total_steps), total_steps=self.total_steps,
                           min_lr_ratio=o.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group.update(initial_lr=o.lr, lr=o.lr * factor)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _finish(self, state: dict, peak: int, last_val: dict, resumed_from) -> dict:
        # token and FLOP counters are per process; supervised tokens were already counted globally
        totals = all_reduce_sum(torch.tensor([float(state["processed_tokens"]), float(state["padded_tokens"]),
                                              float(state["flops"])], dtype=torch.float64), self.dist).tolist()
        processed, padded, flops = (int(x) for x in totals)
        summary = {
            "records": self.num_records, "examples": len(self.examples), "dropped_records": len(self.dropped),
            "steps": state["step"], "processed_tokens": processed, "padded_tokens": padded,
            "supervised_tokens": state["supervised_tokens"], "flops": flops,
            "peak_memory_bytes": peak, "wall_time_s": state["elapsed"],
            "tokens_per_s": processed / max(state["elapsed"], 1e-9),
            "world_size": self.dist.world_size, "parallel": self._parallel_kind(),
            "teacher_sharded": is_sharded(self.teacher),
            "device": str(self.device), "data_format": self.data_format,
            "resumed_from": str(resumed_from) if resumed_from else None, "resume_notes": self.resume_notes,
            "config_changes": self.config_changes, **self.data_notes, **last_val,
            "validation_every_steps": self.eval_interval,  # eval_every as steps (0: only at the end)
            # the figure and step of best/ (null: none kept, no validation records or keep_best false)
            "best_checkpoint_by": state["best_by"] if self.cfg.keep_best else None,
            "best_checkpoint_step": state["best_step"] if self.cfg.keep_best else None,
            "final_model": str(self.out / "final"),
            "truncation": to_dict(self.cfg.encode), "loss": to_dict(self.cfg.loss),
        }
        if self.cfg.save_every:
            self._save(state)
        weights = self._full_state_dict()  # a collective under FSDP: every rank takes part
        if self.dist.is_main:
            ckpt.save_pretrained_atomic(self.student, self.tokenizer, self.out / "final", weights)
            (self.out / "run_summary.json").write_text(json.dumps(summary, indent=2))
            from cotdistill.report.plots import loss_curve_plot  # matplotlib: imported only when a run ends

            loss_curve_plot(read_metrics(self.out / "metrics.jsonl"), self.out / "loss_curve.png")
        barrier(self.dist)
        return summary

    def close(self) -> None:
        self._release_output()
        cleanup(self.dist)


def train(config: TrainConfig, given: GivenObjects | None = None) -> dict:
    """Run a training job end to end and return its run summary."""
    trainer = Trainer(config, given)
    try:
        return trainer.train()
    finally:
        trainer.close()
