"""Which checkpoint a stage evaluates (``evaluate: best|final``), on fake run folders and a fake evaluator."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cotdistill.evaluation.spec import EvalSpec
from cotdistill.stages.reuse import record, training_key
from cotdistill.stages.select_experiment import SelectExperimentConfig
from cotdistill.stages.setting import train_and_evaluate
from cotdistill.stages.sweep import SweepConfig
from cotdistill.training.config import TrainConfig


def _finished_run(where, best: bool):
    """A trained setting as train leaves it: run_summary.json, final/ and, where validation kept one, best/; made
    under the key of ``TrainConfig()`` (so the stage reuses it)."""
    train_dir = where / "train"
    record(train_dir / "run_summary.json", training_key(replace(TrainConfig(), output_dir=str(train_dir))))
    (train_dir / "final").mkdir(parents=True)
    if best:
        (train_dir / "best").mkdir()
    summary = {"steps": 40, "best_checkpoint_by": "val_ce" if best else None,
               "best_checkpoint_step": 30 if best else None, "supervised_tokens": 7}
    (train_dir / "run_summary.json").write_text(json.dumps(summary))


@pytest.fixture
def evaluated(monkeypatch):
    """The model paths the (fake) evaluator was called on; it writes results.json as evaluate_model does."""
    from cotdistill.evaluation import benchmarks

    calls = []

    def fake_evaluate_model(model_path, spec, *, out_dir, progress=True, device="auto"):
        calls.append(model_path)
        results = {"bench": "fake", "accuracy": 0.5, "ci95": [0.1, 0.9], "model": model_path}
        benchmarks.write_eval(out_dir, results, [])
        return results

    monkeypatch.setattr(benchmarks, "evaluate_model", fake_evaluate_model)
    return calls


@pytest.mark.parametrize("evaluate, folder, step", [("best", "best", 30), ("final", "final", 40)])
def test_the_named_checkpoint_is_evaluated_and_recorded(tmp_path, evaluated, evaluate, folder, step):
    _finished_run(tmp_path, best=True)
    summary, results = train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate=evaluate)
    assert evaluated == [str(tmp_path / "train" / folder)] and summary["steps"] == 40
    assert (results["checkpoint"], results["checkpoint_step"]) == (folder, step)
    assert json.loads((tmp_path / "eval" / "results.json").read_text()) == results


def test_best_without_a_best_folder_evaluates_final_with_a_note(tmp_path, evaluated, capsys):
    _finished_run(tmp_path, best=False)
    _, results = train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate="best")
    assert evaluated == [str(tmp_path / "train" / "final")]
    assert (results["checkpoint"], results["checkpoint_step"]) == ("final", 40)
    assert "kept no best/ checkpoint" in capsys.readouterr().err


def test_finished_results_are_kept_unless_they_are_of_another_checkpoint(tmp_path, evaluated):
    _finished_run(tmp_path, best=True)
    train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate="best")
    train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate="best")
    assert len(evaluated) == 1  # the second call found them
    _, results = train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate="final")
    assert evaluated[1:] == [str(tmp_path / "train" / "final")] and results["checkpoint"] == "final"
    # results with no key beside them (written before keys, or planted) say nothing of what made them: redone
    (tmp_path / "eval" / "results.key.json").unlink()
    train_and_evaluate(TrainConfig(), EvalSpec(), tmp_path, evaluate="final")
    assert len(evaluated) == 3


def test_stage_defaults_and_bad_values():
    assert SweepConfig().evaluate == "best"  # the paper: the best checkpoint by validation CE
    assert SelectExperimentConfig().evaluate == "final"  # its cells keep no best/ (see the field's comment)
    for config in (SweepConfig, SelectExperimentConfig):
        with pytest.raises(ValueError, match="evaluate must be one of best, final, found 'last'"):
            config(evaluate="last")
