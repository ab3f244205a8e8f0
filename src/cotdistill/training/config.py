"""The training run's typed config. Defaults live here and nowhere else."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cotdistill.config import ConfigError, from_dict
from cotdistill.data.encode import EncodeConfig
from cotdistill.data.formats import check_fields
from cotdistill.data.records import parse_system_policy
from cotdistill.losses import LossConfig
from cotdistill.threads import check_threads

# the learning-rate schedules training/schedule.py builds; the allowed values of optim.schedule
SCHEDULES = ("cosine", "onecycle")


@dataclass
class DataConfig:
    path: str = ""  # JSONL / parquet / HF dataset dir / hub dataset id; "world:train" = the embedded world's split
    format: str = "auto"  # auto | cot | messages | sharegpt | gsm8k
    fields: dict[str, str] | None = None  # our name -> the dataset's column, e.g. {prompt: problem, cot: reasoning}
    split: str = "train"  # the split of a hub dataset or a DatasetDict folder
    subset: str | None = None  # a hub dataset's configuration ("main" for openai/gsm8k)
    on_error: str = "raise"  # raise | skip
    val_path: str | None = None  # a file, folder or hub id (the training id again with val_split: its other split)
    val_split: str | None = None  # the split val_path is read from (null: split)
    # Which records train and validate (data/split.py, ``split_records``). With split_seed: all records of path ->
    # drop those longer than max_tokens -> a seeded permutation, whose first val_size (or floor(val_fraction * n))
    # validate -> the first max_records of the rest train (the paper: filter, train_test_split(test_size=1000,
    # seed=42), the first 8000). Without split_seed: the first max_records of path -> max_tokens -> the last val_size
    # (or floor(val_fraction * n)) validate, the file's tail. Every record keeps its index in the file either way.
    val_fraction: float = 0.05  # the share split off as validation when val_path is empty and val_size is null
    val_size: int | None = None  # validation as a count instead of val_fraction (changing both is an error)
    split_seed: int | None = None  # null: validation is the file's tail; an int: a seeded random split (numpy PCG64)
    max_records: int | None = None  # null: all; without split_seed the file's first N, with it a random N of the rest
    max_tokens: int | None = None  # drop records whose whole templated sequence (untruncated) has more tokens
    system: str = "drop"  # drop | keep | replace:TEXT — the system turn trained with (drop: as the paper's code)
    dedup: bool = False  # drop records identical to an earlier one (they are counted and reported either way)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        parse_system_policy(self.system)
        check_fields(self.fields)
        if self.val_split is not None and not self.val_path:  # it would silently validate on the training tail
            raise ValueError("val_split names the split of val_path: set val_path too (it may be the same hub id "
                             "or folder as path)")
        if self.max_records is not None and self.max_records < 1:  # 0 silently trained on one record
            raise ValueError(f"max_records must be >= 1 or null, got {self.max_records}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or null, got {self.max_tokens}")
        if self.split_seed is not None and self.split_seed < 0:  # numpy's generators take no negative seed
            raise ValueError(f"split_seed must be >= 0 or null, got {self.split_seed}")
        if self.split_seed is not None and self.val_path and self.max_records is None:
            raise ValueError(f"split_seed ({self.split_seed}) has nothing to draw: validation is val_path and "
                             "max_records is null (set max_records for a random subset, or leave split_seed null)")
        self._check_val_size()

    def _check_val_size(self) -> None:
        if self.val_size is None:
            return
        if self.val_size < 1:  # one way to say "no validation": val_fraction 0
            raise ValueError(f"val_size must be >= 1 or null (for no validation set val_fraction: 0), got "
                             f"{self.val_size}")
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
    lr: float = 5e-4  # the peak learning rate
    # cosine: linear warm-up to lr, then cosine decay to lr * min_lr_ratio. onecycle: torch's OneCycleLR with its
    # defaults, as the truncation paper's code ran it: cosine warm-up from lr / 25 to lr, cosine decay to
    # lr / 25 / 1e4, and beta1 cycled 0.95 -> 0.85 (at the peak) -> 0.95, so betas[0] is not used
    schedule: str = "cosine"  # cosine | onecycle
    weight_decay: float = 0.0
    # false: only matrices decay (parameters with 2+ dimensions); biases, norm weights and other 1-D parameters
    # do not. true: every parameter decays (the paper's code: AdamW(model.parameters(), weight_decay=0.05))
    decay_all_parameters: bool = False
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10  # optimizer steps of warm-up (ignored when warmup_ratio is set)
    warmup_ratio: float | None = None  # warm-up as a share of the run's optimizer steps (the paper: 0.1)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio (onecycle: not used)
    max_grad_norm: float = 1.0  # 0 disables clipping
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    max_steps: int | None = None  # optimizer steps; if null, ``epochs`` passes over the data
    epochs: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(f"batch_size and grad_accum must be >= 1, got {self.batch_size}, {self.grad_accum}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_ratio is not None and not 0.0 <= self.warmup_ratio < 1.0:  # onecycle needs a decay phase
            raise ValueError(f"warmup_ratio must be in [0, 1) or null, got {self.warmup_ratio}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {self.betas}")
        self.betas = tuple(self.betas)


# the validation figures keep_best may rank checkpoints by
BEST_METRICS = ("val_ce", "val_loss")


@dataclass
class TrainConfig:
    student: str = "world:student"  # path, .gguf or hub id; "world:student" / "world:teacher" = the embedded models,
    # "real:smollm2-135m-instruct" = a pretrained one (cotdistill[real])
    teacher: str | None = "world:teacher"  # online teacher; unused when loss.distill_ratio == 0
    teacher_cache: str | None = None  # offline top-k cache dir (replaces the online teacher)
    tokenizer: str | None = None  # defaults to the student's
    chat_template: str | None = None  # a Jinja file or text replacing the tokenizer's (saved with the trained model)
    output_dir: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # autocast on CUDA only; fp32 on CPU (bf16 autocast is ~30x slower on CPU)
    gradient_checkpointing: bool = False  # recompute layer activations in the backward (less memory, ~1/3 more FLOPs)
    pad_to_multiple_of: int | None = 8
    packing: bool = False  # several records per row, attention kept within each (position-id resets)
    pack_length: int = 2048  # tokens per packed row
    # validate every N optimizer steps (a whole number), or a share of an epoch's steps when in (0, 1): 0.1 = ten
    # validations per epoch, rounded down to whole steps; 0 = only at the end (the end is always validated)
    eval_every: int | float = 50
    save_every: int = 50  # steps; 0 = only the final model
    log_every: int = 1  # steps between console lines when progress is off (metrics.jsonl has every step)
    keep_best: bool = True  # keep, in best/, the validated checkpoint with the lowest best_metric
    # val_ce (the paper's choice) | val_loss (the trained objective, CE mixed with KD); val_loss falls back to val_ce,
    # with a warning, where KD is not measured on validation (a teacher cache that lacks the validation records)
    best_metric: str = "val_ce"
    resume: bool = True  # continue from output_dir's last checkpoint when there is one
    allow_config_change: bool = False  # resume although the config differs from the checkpoint's (new values apply)
    fsdp: bool = False  # under torchrun: shard the student with FSDP2 fully_shard instead of DDP
    teacher_sharding: str = "replicate"  # under torchrun: replicate | shard (FSDP2, forward only)
    progress: bool = True
    report_to: list[str] = field(default_factory=list)  # tensorboard | wandb | none (extras: cotdistill[logging])
    wandb_project: str = "cotdistill"
    threads: int | None = None  # CPU threads; null: OMP_NUM_THREADS if set, else the cores this process may use

    def __post_init__(self) -> None:
        # Python users write TrainConfig(optim={"lr": 1e-3}); a dict becomes its config here, checked as YAML is
        for name, cls in (("data", DataConfig), ("encode", EncodeConfig), ("loss", LossConfig), ("optim", OptimConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, from_dict(cls, value, name))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be a {cls.__name__} or a dict, got {type(value).__name__}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.pack_length < 2:
            raise ValueError(f"pack_length must be >= 2, got {self.pack_length}")
        if self.teacher_sharding not in ("replicate", "shard"):
            raise ValueError(f"teacher_sharding must be replicate or shard, got {self.teacher_sharding!r}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if isinstance(self.report_to, str):  # report_to="wandb" from Python: one target, not five letters
            self.report_to = [self.report_to]
        check_threads(self.threads)
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 0:
            raise ValueError(f"pad_to_multiple_of must be >= 0 or null (0 or null: no rounding), "
                             f"got {self.pad_to_multiple_of}")
        if self.eval_every < 0 or self.save_every < 0:
            raise ValueError("eval_every and save_every must be >= 0")
        if self.eval_every >= 1 and self.eval_every != int(self.eval_every):
            raise ValueError(f"eval_every must be a whole number of steps, a share of an epoch in (0, 1), or 0; "
                             f"got {self.eval_every}")
        if self.eval_every >= 1 or self.eval_every == 0:
            self.eval_every = int(self.eval_every)  # 50.0 from a float-typed caller: saved and compared as 50
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"best_metric must be one of {', '.join(BEST_METRICS)}, got {self.best_metric!r}")

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
