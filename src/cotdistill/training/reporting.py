"""Where a run's metrics go, each behind one ``log(step, metrics)`` / ``close()``: ``metrics.jsonl``, the console,
the progress bar, and TensorBoard and Weights & Biases (``report_to``).

TensorBoard and W&B are optional extras (``pip install "cotdistill[logging]"``); a run that asks for one that is not
installed stops before any weights load. Only the main process reports.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import secrets
from pathlib import Path

from tqdm.auto import tqdm

from cotdistill.errors import UserError

REPORTERS = ("tensorboard", "wandb", "none")
# the validation figures, in the order the console shows them
VAL_FIGURES = ("val_loss", "val_ce", "val_kd")
logger = logging.getLogger("cotdistill.training")


def warn(message: str, is_main: bool = True) -> None:
    """A warning through ``logging`` (the CLI prints it to stderr; with no logging set up Python prints warnings
    to stderr as well). Only the main process speaks."""
    if is_main:
        logger.warning("warning: %s", message)


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


class MetricsFile:
    """``metrics.jsonl``: one JSON line per optimizer step, flushed, so a killed run keeps what it logged."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a")

    def log(self, step: int, metrics: dict) -> None:
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Console:
    """Validation figures whenever measured; without a progress bar, a line every ``log_every`` steps (and at the
    last) says the run is alive and where it is."""

    def __init__(self, total_steps: int, log_every: int, progress: bool) -> None:
        self.total_steps, self.log_every, self.progress = total_steps, log_every, progress

    def log(self, step: int, metrics: dict) -> None:
        if any(key in metrics for key in VAL_FIGURES):
            figures = "  ".join(f"{key[4:]} {metrics[key]:.4f}" for key in VAL_FIGURES if key in metrics)
            logger.info("step %d/%d  validation: %s", step, self.total_steps, figures)
        if not self.progress and (step % self.log_every == 0 or step == self.total_steps):
            logger.info("step %d/%d  loss %.4f  ce %.4f  kd %.4f  lr %.2e  %.0f tokens/s", step, self.total_steps,
                        metrics["loss"], metrics["ce"], metrics["kd"], metrics["lr"], metrics["tokens_per_s"])

    def close(self) -> None:
        pass


class ProgressBar:
    def __init__(self, total_steps: int, initial_step: int) -> None:
        self.bar = tqdm(total=total_steps, initial=initial_step, desc="train")

    def log(self, step: int, metrics: dict) -> None:
        self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", ce=f"{metrics['ce']:.3f}", kd=f"{metrics['kd']:.3f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class Reporters:
    """Every target behind one ``log`` / ``close``."""

    def __init__(self, targets: list) -> None:
        self.targets = targets

    def log(self, step: int, metrics: dict) -> None:
        for target in self.targets:
            target.log(step, metrics)

    def close(self) -> None:
        for target in self.targets:
            target.close()


def run_reporters(cfg, out: Path, total_steps: int, initial_step: int, config: dict) -> Reporters:
    """The main process's reporters for a training run of config ``cfg`` (a ``TrainConfig``; ``config``: it as a
    dict), in the order they are written: ``metrics.jsonl``, the console, the progress bar, then ``report_to``."""
    targets: list = [MetricsFile(out / "metrics.jsonl"), Console(total_steps, cfg.log_every, cfg.progress)]
    if cfg.progress:
        targets.append(ProgressBar(total_steps, initial_step))
    for target in check_report_to(cfg.report_to):
        targets.append(TensorBoardReporter(out) if target == "tensorboard" else WandbReporter(out, config,
                                                                                             cfg.wandb_project))
    return Reporters(targets)


def read_metrics(path: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (a line cut by a kill is skipped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def truncate_metrics(path: Path, step: int) -> None:
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


def fresh_state() -> dict:
    """A run's counters before its first step (a checkpoint's replace them on resume; one that predates a key keeps
    this value for it)."""
    from cotdistill.training.rollout import ROLLOUT_COUNTERS

    return {"step": 0, "best_val": math.inf, "best_by": None, "best_step": None, "processed_tokens": 0,
            "padded_tokens": 0, "supervised_tokens": 0, "flops": 0, "teacher_flops": 0, "elapsed": 0.0,
            **{key: 0 for key in ROLLOUT_COUNTERS}}


def count_batch(state: dict, batch, student_shape, teacher_shape) -> None:
    """Tokens and FLOPs of one micro-batch (a ``data.batching.Batch``), into the run's counters: ``flops`` all of
    them, ``teacher_flops`` the teacher's share."""
    from cotdistill.compute import forward_flops, training_flops

    mask = batch.tensors["real_tokens"]
    state["processed_tokens"] += int(mask.sum())
    state["padded_tokens"] += mask.numel()
    state["flops"] += training_flops(student_shape, teacher_shape, *mask.shape, head_positions=batch.num_supervised)
    if teacher_shape is not None:
        state["teacher_flops"] += forward_flops(teacher_shape, *mask.shape, head_positions=batch.num_supervised)


def run_summary(cfg, data, state: dict, processed: int, padded: int, flops: int, *, peak: int, last_val: dict,
                run: dict, costs: dict | None = None) -> dict:
    """``run_summary.json``: what was trained on (``data``: the ``PreparedData``), what it cost, how it ran
    (``run``: world size, parallelism, device, resumption), the last validation and which checkpoints it kept."""
    from cotdistill.config import to_dict

    return {
        "records": data.num_records, "examples": len(data.examples), "dropped_records": len(data.dropped),
        "steps": state["step"], "processed_tokens": processed, "padded_tokens": padded,
        "supervised_tokens": state["supervised_tokens"],
        # every FLOP of the run (student training, the teacher, on-policy sampling); costs breaks it down
        "flops": flops, **(costs or {}),
        "peak_memory_bytes": peak, "wall_time_s": state["elapsed"],
        "tokens_per_s": processed / max(state["elapsed"], 1e-9),
        "world_size": run["world_size"], "parallel": run["parallel"], "teacher_sharded": run["teacher_sharded"],
        "device": run["device"], "precision": run["precision"], "precision_note": run["precision_note"],
        "data_format": data.data_format,
        "resumed_from": run["resumed_from"], "resume_notes": run["resume_notes"],
        "config_changes": run["config_changes"], **data.notes, **last_val,
        "validation_every_steps": run["validation_every_steps"],  # eval_every as steps (0: only at the end)
        # the figure and step of best/ (null: none kept, no validation records or keep_best false)
        "best_checkpoint_by": state["best_by"] if cfg.keep_best else None,
        "best_checkpoint_step": state["best_step"] if cfg.keep_best else None,
        "final_model": str(Path(cfg.output_dir) / "final"),
        "truncation": to_dict(cfg.encode), "loss": to_dict(cfg.loss),
    }
