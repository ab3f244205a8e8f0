"""The training run's typed config. Defaults live here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

from cotdistill.config import ConfigError, from_dict
from cotdistill.data.encode import EncodeConfig
from cotdistill.data.formats import check_fields
from cotdistill.data.records import parse_system_policy
from cotdistill.losses import LossConfig


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
    val_fraction: float = 0.05  # used when val_path is empty
    max_records: int | None = None
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


@dataclass
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
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
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {self.betas}")
        self.betas = tuple(self.betas)


@dataclass
class TrainConfig:
    student: str = "world:student"  # path or hub id; "world:student" / "world:teacher" = the embedded models
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
    eval_every: int = 50  # steps; 0 = only at the end
    save_every: int = 50  # steps; 0 = only the final model
    log_every: int = 1  # steps between console lines when progress is off (metrics.jsonl has every step)
    keep_best: bool = True  # keep the checkpoint with the best validation loss as well as the last
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
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or null, got {self.threads}")
        if self.eval_every < 0 or self.save_every < 0:
            raise ValueError("eval_every and save_every must be >= 0")

    @property
    def needs_teacher(self) -> bool:
        return self.loss.distill_ratio > 0
