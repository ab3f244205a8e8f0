"""The training run's typed config. Defaults live here and nowhere else."""

from __future__ import annotations

import logging
import math
import typing
from dataclasses import dataclass, field
from typing import Literal

from cotdistill.config import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SHARE,
    ConfigError,
    Range,
    check_field_rules,
    from_dict,
)
from cotdistill.data.encode import ENDING_TRUNCATIONS, EncodeConfig
from cotdistill.data.formats import FormatName, check_fields
from cotdistill.data.records import parse_system_policy
from cotdistill.losses import LossConfig
from cotdistill.precision import Precision
from cotdistill.threads import check_threads

DataFormat = Literal["auto", FormatName]  # auto: read from the records' keys
OnError = Literal["raise", "skip"]
# the learning-rate schedules training/schedule.py builds: the allowed values of optim.schedule
Schedule = Literal["cosine", "onecycle"]
SCHEDULES = typing.get_args(Schedule)


@dataclass
class DataConfig:
    path: str = field(default="", metadata={
        "help": "JSONL / parquet / HF dataset dir / hub dataset id; \"world:train\" = the embedded world's split"})
    format: DataFormat = "auto"
    fields: dict[str, str] | None = field(default=None, metadata={
        "help": "our name -> the dataset's column, e.g. {prompt: problem, cot: reasoning}"})
    split: str = field(default="train", metadata={"help": "the split of a hub dataset or a DatasetDict folder"})
    subset: str | None = field(default=None, metadata={
        "help": "a hub dataset's configuration (\"main\" for openai/gsm8k)"})
    on_error: OnError = field(default="raise", metadata={"help": "a record that cannot be read: stop, or skip it"})
    val_path: str | None = field(default=None, metadata={
        "help": "a file, folder or hub id (the training id again with val_split: its other split)"})
    val_split: str | None = field(default=None, metadata={"help": "the split val_path is read from (null: split)"})
    # Which records train and validate (data/split.py, ``split_records``). With split_seed: all records of path ->
    # drop those longer than max_tokens -> a seeded permutation, whose first val_size (or floor(val_fraction * n))
    # validate -> the first max_records of the rest train (the paper: filter, train_test_split(test_size=1000,
    # seed=42), the first 8000). Without split_seed: the first max_records of path -> max_tokens -> the last val_size
    # (or floor(val_fraction * n)) validate, the file's tail. Every record keeps its index in the file either way.
    val_fraction: float = field(default=0.05, metadata={
        "help": "the share split off as validation when val_path is empty and val_size is null", "range": SHARE})
    val_size: int | None = field(default=None, metadata={
        "help": "validation as a count instead of val_fraction (changing both is an error)",
        "range": Range(1, note="for no validation set val_fraction: 0")})
    split_seed: int | None = field(default=None, metadata={
        "help": "null: validation is the file's tail; an int: a seeded random split (numpy PCG64)",
        "range": NON_NEGATIVE})  # numpy's generators take no negative seed
    max_records: int | None = field(default=None, metadata={
        "help": "null: all; without split_seed the file's first N, with it a random N of the rest",
        "range": AT_LEAST_ONE})  # 0 silently trained on one record
    max_tokens: int | None = field(default=None, metadata={
        "help": "drop records whose whole templated sequence (untruncated) has more tokens", "range": AT_LEAST_ONE})
    system: str = field(default="drop", metadata={
        "help": "drop | keep | replace:TEXT — the system turn trained with (drop: as the paper's code)"})
    dedup: bool = field(default=False, metadata={
        "help": "drop records identical to an earlier one (they are counted and reported either way)"})

    def __post_init__(self) -> None:
        check_field_rules(self)
        parse_system_policy(self.system)
        check_fields(self.fields)
        if self.val_split is not None and not self.val_path:  # it would silently validate on the training tail
            raise ValueError("val_split names the split of val_path: set val_path too (it may be the same hub id "
                             "or folder as path)")
        if self.split_seed is not None and self.val_path and self.max_records is None:
            raise ValueError(f"split_seed ({self.split_seed}) has nothing to draw: validation is val_path and "
                             "max_records is null (set max_records for a random subset, or leave split_seed null)")
        self._check_val_size()

    def _check_val_size(self) -> None:
        if self.val_size is None:
            return
        if self.val_fraction != DataConfig.val_fraction:  # which one was meant cannot be guessed
            raise ValueError(f"val_size ({self.val_size}) and val_fraction ({self.val_fraction}) both set the "
                             "validation size: set only one")
        if self.val_path:  # it would be silently ignored: validation is that file
            raise ValueError(f"val_size ({self.val_size}) splits validation off path, and val_path "
                             f"({self.val_path}) is the validation: set only one")

    @property
    def read_limit(self) -> int | None:
        """The records to read from ``path``: the first ``max_records`` without a split seed; all with one (the
        subset is drawn from the training part after the split)."""
        return self.max_records if self.split_seed is None else None


@dataclass
class OptimConfig:
    lr: float = field(default=5e-4, metadata={"help": "the peak learning rate", "range": POSITIVE})
    schedule: Schedule = field(default="cosine", metadata={
        "help": "cosine: linear warm-up to lr, then cosine decay to lr * min_lr_ratio. onecycle: torch's OneCycleLR "
                "with its defaults, as the truncation paper's code ran it: cosine warm-up from lr / 25 to lr, cosine "
                "decay to lr / 25 / 1e4, and beta1 cycled 0.95 -> 0.85 (at the peak) -> 0.95, so betas[0] is not "
                "used"})
    weight_decay: float = field(default=0.0, metadata={"range": NON_NEGATIVE})
    decay_all_parameters: bool = field(default=False, metadata={
        "help": "false: only matrices decay (parameters with 2+ dimensions); biases, norm weights and other 1-D "
                "parameters do not. true: every parameter decays (the paper's code: AdamW(model.parameters(), "
                "weight_decay=0.05))"})
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata={"range": SHARE})
    warmup_steps: int = field(default=10, metadata={
        "help": "optimizer steps of warm-up (ignored when warmup_ratio is set)", "range": NON_NEGATIVE})
    warmup_ratio: float | None = field(default=None, metadata={
        "help": "warm-up as a share of the run's optimizer steps (the paper: 0.1)",
        "range": SHARE})  # onecycle needs a decay phase
    min_lr_ratio: float = field(default=0.1, metadata={
        "help": "cosine decays to lr * min_lr_ratio (onecycle: not used)", "range": PROBABILITY})
    max_grad_norm: float = field(default=1.0, metadata={
        "help": "0 disables clipping", "range": Range(0, note="0 disables clipping")})
    batch_size: int = field(default=8, metadata={"help": "per process, per micro-batch", "range": AT_LEAST_ONE})
    grad_accum: int = field(default=1, metadata={"range": AT_LEAST_ONE})
    max_steps: int | None = field(default=None, metadata={
        "help": "optimizer steps; if null, ``epochs`` passes over the data", "range": AT_LEAST_ONE})
    epochs: float = field(default=1.0, metadata={"range": POSITIVE})

    def __post_init__(self) -> None:
        check_field_rules(self)
        self.betas = tuple(self.betas)


@dataclass
class RolloutConfig:
    """How the student samples its own responses on on-policy steps (``loss.on_policy`` > 0): the generation
    settings evaluation has, applied to the training prompts with the current weights."""

    temperature: float = field(default=1.0, metadata={
        "help": "1 = the student's own distribution (what on-policy distillation assumes); 0 = greedy",
        "range": NON_NEGATIVE})
    top_p: float = field(default=1.0, metadata={"range": FRACTION})
    max_new_tokens: int = field(default=512, metadata={
        "help": "the longest sample; with encode.lsp < 1 sampling stops at the lead budget floor(lsp * this)",
        "range": AT_LEAST_ONE})
    samples: int = field(default=1, metadata={"help": "samples per training prompt", "range": AT_LEAST_ONE})

    def __post_init__(self) -> None:
        check_field_rules(self)


Device = Literal["auto", "cpu", "cuda"]
TeacherSharding = Literal["replicate", "shard"]
BestMetric = Literal["val_ce", "val_loss"]  # the validation figures keep_best may rank checkpoints by
BEST_METRICS = typing.get_args(BestMetric)


@dataclass
class TrainConfig:
    student: str = field(default="world:student", metadata={
        "help": "path, .gguf or hub id; \"world:student\" / \"world:teacher\" = the embedded models, "
                "\"real:smollm2-135m-instruct\" = a pretrained one (cotdistill[real])"})
    teacher: str | None = field(default="world:teacher", metadata={
        "help": "online teacher; unused when loss.distill_ratio == 0"})
    teacher_cache: str | None = field(default=None, metadata={
        "help": "offline top-k cache dir (replaces the online teacher)"})
    tokenizer: str | None = field(default=None, metadata={"help": "defaults to the student's"})
    chat_template: str | None = field(default=None, metadata={
        "help": "a Jinja file or text replacing the tokenizer's (saved with the trained model)"})
    output_dir: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    seed: int = 0
    device: Device = "auto"
    precision: Precision = field(default="auto", metadata={
        "help": "auto: bf16 autocast where the device has bf16 units (CUDA with bf16; a CPU reporting avx512_bf16, "
                "amx_bf16 or Arm's bf16: 1.5-1.6x per world train step on this project's CPU), fp32 elsewhere; "
                "fp32 | bf16: that one. Master weights and optimizer state stay fp32"})
    bf16: bool | None = field(default=None, metadata={
        "help": "deprecated: true = precision auto, false = precision fp32 (read with a warning)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute layer activations in the backward (less memory, ~1/3 more FLOPs)"})
    pad_to_multiple_of: int | None = field(default=8, metadata={
        "range": Range(0, note="0 or null: no rounding")})
    packing: bool = field(default=False, metadata={
        "help": "several records per row, attention kept within each (position-id resets)"})
    pack_length: int = field(default=2048, metadata={"help": "tokens per packed row", "range": Range(2)})
    eval_every: int | float = field(default=50, metadata={
        "help": "validate every N optimizer steps (a whole number), or a share of an epoch's steps when in (0, 1): "
                "0.1 = ten validations per epoch, rounded down to whole steps; 0 = only at the end (the end is "
                "always validated)", "range": NON_NEGATIVE})
    save_every: int = field(default=50, metadata={"help": "steps; 0 = only the final model", "range": NON_NEGATIVE})
    log_every: int = field(default=1, metadata={
        "help": "steps between console lines when progress is off (metrics.jsonl has every step)",
        "range": AT_LEAST_ONE})
    keep_best: bool = field(default=True, metadata={
        "help": "keep, in best/, the validated checkpoint with the lowest best_metric"})
    best_metric: BestMetric = field(default="val_ce", metadata={
        "help": "val_ce (the paper's choice) | val_loss (the trained objective, CE mixed with KD); val_loss falls "
                "back to val_ce, with a warning, where KD is not measured on validation (a teacher cache that lacks "
                "the validation records)"})
    resume: bool = field(default=True, metadata={
        "help": "continue from output_dir's last checkpoint when there is one"})
    allow_config_change: bool = field(default=False, metadata={
        "help": "resume although the config differs from the checkpoint's (new values apply)"})
    fsdp: bool = field(default=False, metadata={
        "help": "under torchrun: shard the student with FSDP2 fully_shard instead of DDP"})
    teacher_sharding: TeacherSharding = field(default="replicate", metadata={
        "help": "under torchrun: shard (FSDP2, forward only) or replicate the teacher"})
    progress: bool = True
    report_to: list[str] = field(default_factory=list, metadata={
        "help": "tensorboard | wandb | none (extras: cotdistill[logging])"})
    wandb_project: str = "cotdistill"
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads; null: OMP_NUM_THREADS if set, else the cores this process may use"})

    def __post_init__(self) -> None:
        # Python users write TrainConfig(optim={"lr": 1e-3}); a dict becomes its config here, checked as YAML is
        for name, cls in (("data", DataConfig), ("encode", EncodeConfig), ("loss", LossConfig), ("optim", OptimConfig),
                          ("rollout", RolloutConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, from_dict(cls, value, name))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be a {cls.__name__} or a dict, got {type(value).__name__}")
        check_field_rules(self)
        if isinstance(self.report_to, str):  # report_to="wandb" from Python: one target, not five letters
            self.report_to = [self.report_to]
        check_threads(self.threads)
        if self.eval_every >= 1 and self.eval_every != int(self.eval_every):
            raise ValueError(f"eval_every must be a whole number of steps, a share of an epoch in (0, 1), or 0; "
                             f"got {self.eval_every}")
        if self.eval_every >= 1 or self.eval_every == 0:
            self.eval_every = int(self.eval_every)  # 50.0 from a float-typed caller: saved and compared as 50
        self._check_on_policy()
        self._check_cross_tokenizer()
        self._read_old_bf16()

    def _read_old_bf16(self) -> None:
        """``bf16: true|false`` of configs written before ``precision``: true meant bf16 autocast where the device
        runs it (then CUDA only), false fp32."""
        if self.bf16 is None:
            return
        meant = "auto" if self.bf16 else "fp32"
        log = logging.getLogger("cotdistill.config")
        if self.precision != "auto":  # set by its new name (an override on an old file that printed bf16: true)
            log.warning(f"bf16 is deprecated and ignored here: precision {self.precision} is set")
        else:
            log.warning(f"bf16 is deprecated: read as precision: {meant} (auto now picks bf16 on CPUs with bf16 "
                        "units too)")
            self.precision = meant
        self.bf16 = None

    def _check_on_policy(self) -> None:
        """On-policy steps need a teacher that can score text that did not exist before the step."""
        if self.loss.on_policy == 0:
            return
        if self.loss.distill_ratio == 0:
            raise ValueError(f"loss.on_policy {self.loss.on_policy} needs a teacher to score the student's samples: "
                             "set loss.distill_ratio above 0 (1 = the divergence alone, as on-policy distillation "
                             "trains)")
        if self.teacher_cache:
            raise ValueError(f"loss.on_policy {self.loss.on_policy}: an offline teacher_cache ({self.teacher_cache}) "
                             "cannot score samples that did not exist when it was built; set teacher: to the teacher "
                             "model and teacher_cache: null")
        if self.fsdp:
            raise ValueError("loss.on_policy with fsdp: sampling from a sharded student is not supported yet; use "
                             "DDP (fsdp: false) for on-policy runs")

    def _check_cross_tokenizer(self) -> None:
        """What cross-tokenizer KD is built for: an online teacher, rows that are one record each."""
        mode = self.loss.cross_tokenizer
        if mode == "off":
            return
        refused = [(self.loss.distill_ratio == 0, "loss.distill_ratio 0 (plain SFT has no teacher to compare)"),
                   (self.packing, "packing (rows must be one record each)"),
                   (self.teacher_sharding == "shard", "teacher_sharding shard (not built across tokenizers)"),
                   # the alignment is computed on the record's rendering: each row must be its start
                   (self.encode.truncation in ENDING_TRUNCATIONS or self.encode.window != "left",
                    f"truncation {self.encode.truncation} (rows must be the start of their record: none, lsp, "
                    "cut_after_think or a left window)")]
        for bad, what in refused:
            if bad:
                raise ValueError(f"loss.cross_tokenizer {mode} does not go with {what}")

    def validation_interval(self, steps_per_epoch: int) -> int:
        """Optimizer steps between validations (0: only at the end): ``eval_every`` itself, or a share of an
        epoch's ``steps_per_epoch`` rounded down, at least 1 (as Lightning's ``val_check_interval``, which the
        truncation paper's code used)."""
        if 0 < self.eval_every < 1:
            return max(1, math.floor(self.eval_every * steps_per_epoch))
        return int(self.eval_every)

    @property
    def needs_teacher(self) -> bool:
        return self.loss.distill_ratio > 0

    @property
    def teacher_source(self) -> Literal["none", "online", "cache"]:
        """Which teacher the run reads, decided here once: none (SFT, ``distill_ratio`` 0), the teacher cache when
        one is named, else the online teacher model."""
        if not self.needs_teacher:
            return "none"
        return "cache" if self.teacher_cache else "online"
