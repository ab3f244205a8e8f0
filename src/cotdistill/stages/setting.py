"""Train one setting, then evaluate its best or final model: the step that sweeps and selection experiments
repeat."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from cotdistill.config import save_config
from cotdistill.data.records import parse_system_policy
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.training.config import TrainConfig

# the checkpoints a stage may evaluate: best/ (lowest validation figure, TrainConfig.best_metric) or final/
CHECKPOINTS = ("best", "final")


class SettingError(RuntimeError):
    """Training one setting failed; the stage reports it and goes on with the next."""


def check_checkpoint(evaluate: str) -> None:
    """The rule for a stage config's ``evaluate`` key."""
    if evaluate not in CHECKPOINTS:
        raise ValueError(f"evaluate must be one of {', '.join(CHECKPOINTS)}, got {evaluate!r}")


def chosen_checkpoint(train_dir: Path, summary: dict, evaluate: str) -> tuple[str, int | None]:
    """(folder, step) of the checkpoint to evaluate in a finished run ``train_dir``: ``best/`` or ``final/`` as
    ``evaluate`` says. A run that kept no ``best/`` (no validation records, or keep_best false) has only
    ``final/``: that is evaluated, with a note."""
    if evaluate == "best":
        if (train_dir / "best").is_dir():
            return "best", summary.get("best_checkpoint_step")
        print(f"note: {train_dir} kept no best/ checkpoint (no validation records, or keep_best: false); "
              "evaluating final/", file=sys.stderr, flush=True)
    return "final", summary["steps"]


def train_in_subprocess(config: TrainConfig, config_file: Path) -> None:
    """Train in a fresh process: on CPU the peak-memory reading (resident set size) is only clean in a process
    whose allocator has not already grown for an earlier setting."""
    save_config(config, config_file)
    run = subprocess.run([sys.executable, "-m", "cotdistill", "train", str(config_file)], stderr=subprocess.PIPE,
                         text=True)
    if run.returncode != 0:
        last = [line for line in run.stderr.strip().splitlines() if line.strip()][-1:] or ["(no message)"]
        raise SettingError(f"training {config_file.parent.name} failed: {last[0]}")


def evaluated_as_trained(spec: EvalSpec, config: TrainConfig) -> EvalSpec:
    """The spec with the system prompt the model was trained with (``data.system: replace:TEXT``) where the spec
    names none: a model evaluated without the prompt it always saw is scored on another task."""
    kind, text = parse_system_policy(config.data.system)
    return replace(spec, system=text) if spec.system is None and kind == "replace" else spec


def train_and_evaluate(config: TrainConfig, spec: EvalSpec, where: Path, *, in_subprocess: bool = False,
                       progress: bool = True, evaluate: str = "best") -> tuple[dict, dict]:
    """(run summary, evaluation results) of one setting: trained into ``where/train``, its ``evaluate`` checkpoint
    (``chosen_checkpoint``) evaluated into ``where/eval``, whose results.json says which (``checkpoint``: best or
    final, ``checkpoint_step``). A half whose output exists is not run again, so a stage killed midway resumes
    here; results of another checkpoint than the one now chosen are redone."""
    from cotdistill.evaluation.benchmarks import evaluate_model
    from cotdistill.training.loop import train

    summary_file, results_file = where / "train" / "run_summary.json", where / "eval" / "results.json"
    if not summary_file.exists():
        config = replace(config, output_dir=str(where / "train"))
        if in_subprocess:
            train_in_subprocess(config, where / "train.yaml")
        else:
            train(config)
    summary = json.loads(summary_file.read_text())
    checkpoint, step = chosen_checkpoint(where / "train", summary, evaluate)
    # results written before this key existed were of final/
    if results_file.exists() and json.loads(results_file.read_text()).get("checkpoint", "final") == checkpoint:
        return summary, json.loads(results_file.read_text())
    results = evaluate_model(str(where / "train" / checkpoint), evaluated_as_trained(spec, config),
                             out_dir=where / "eval", progress=progress)
    results.update(checkpoint=checkpoint, checkpoint_step=step)
    results_file.write_text(json.dumps(results, indent=2))
    return summary, json.loads(results_file.read_text())
