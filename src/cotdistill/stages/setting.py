"""Train one setting, then evaluate its final model: the step that sweeps and selection experiments repeat."""

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


class SettingError(RuntimeError):
    """Training one setting failed; the stage reports it and goes on with the next."""


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
                       progress: bool = True) -> tuple[dict, dict]:
    """(run summary, evaluation results) of one setting: trained into ``where/train``, evaluated into
    ``where/eval``. A half whose output exists is not run again, so a stage killed midway resumes here."""
    from cotdistill.evaluation.benchmarks import evaluate_model
    from cotdistill.training.loop import train

    summary_file, results_file = where / "train" / "run_summary.json", where / "eval" / "results.json"
    if not summary_file.exists():
        config = replace(config, output_dir=str(where / "train"))
        if in_subprocess:
            train_in_subprocess(config, where / "train.yaml")
        else:
            train(config)
    if not results_file.exists():
        evaluate_model(str(where / "train" / "final"), evaluated_as_trained(spec, config), out_dir=where / "eval",
                       progress=progress)
    return json.loads(summary_file.read_text()), json.loads(results_file.read_text())
