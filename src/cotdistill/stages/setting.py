"""Train one setting, then evaluate its best or final model: the step that sweeps and selection experiments
repeat."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from dataclasses import replace
from pathlib import Path
from typing import Literal

from cotdistill.config import save_config
from cotdistill.data.records import parse_system_policy
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.stages.reuse import evaluation_key, record, reuse, training_key
from cotdistill.training.config import TrainConfig

# the checkpoints a stage may evaluate: best/ (lowest validation figure, TrainConfig.best_metric) or final/
Checkpoint = Literal["best", "final"]
CHECKPOINTS = typing.get_args(Checkpoint)


class SettingError(RuntimeError):
    """Training one setting failed; the stage reports it and goes on with the next."""


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
    final, ``checkpoint_step``). A half whose output is there under the key of what it is asked now (``reuse``)
    is not run again, so a stage killed midway resumes here; one made with other settings, data or models (or
    of another checkpoint) is made again."""
    config = replace(config, output_dir=str(where / "train"))
    summary = trained(config, in_subprocess)
    checkpoint, step = chosen_checkpoint(where / "train", summary, evaluate)
    results = evaluate_once(str(where / "train" / checkpoint), evaluated_as_trained(spec, config), where / "eval",
                            progress=progress, checkpoint=checkpoint, checkpoint_step=step)
    return summary, results


def trained(config: TrainConfig, in_subprocess: bool = False) -> dict:
    """The run summary of ``config`` trained into its ``output_dir``: the one there when that run was made under
    this config's key, else trained now (a run killed midway under the same key resumes)."""
    from cotdistill.stages.train import run_training

    train_dir = Path(config.output_dir)
    summary_file, key = train_dir / "run_summary.json", training_key(config)
    if not reuse(summary_file, key, "the trained model", folder=train_dir):
        record(summary_file, key)  # before training: a run killed midway is resumed under the same key
        if in_subprocess:
            train_in_subprocess(config, train_dir.parent / "train.yaml")
        else:
            run_training(config)
    return json.loads(summary_file.read_text())


def evaluate_once(model: str, spec: EvalSpec, out_dir: Path, *, progress: bool = True, **recorded) -> dict:
    """``out_dir/results.json`` of ``model`` on ``spec``: the one there when it was made under the same key (the
    model's files, the spec, the files it names, ``recorded``), else evaluated now. ``recorded`` (which checkpoint
    it is) is written into results.json as well."""
    from cotdistill.evaluation.benchmarks import evaluate_model

    results_file, key = out_dir / "results.json", evaluation_key(model, spec, **recorded)
    if not reuse(results_file, key, "the evaluation", folder=out_dir):
        results = evaluate_model(model, spec, out_dir=out_dir, progress=progress)
        results.update(recorded)
        results_file.write_text(json.dumps(results, indent=2))
        record(results_file, key)  # after the results: a run killed before has no key, and is evaluated again
    return json.loads(results_file.read_text())
