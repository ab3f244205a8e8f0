"""A stage's result is reused only under a key of what produced it (issue 26, case 6): a sweep run again with other
eval settings used to keep the old points' results, and the demo read any results.json planted in its folder."""

from __future__ import annotations

import json

import pytest

from cotdistill.config import from_dict
from cotdistill.evaluation import benchmarks
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.stages import demo, setting
from cotdistill.stages.select_experiment import SelectExperimentConfig, run_experiment
from cotdistill.stages.sweep import SweepConfig, run_sweep
from cotdistill.training import loop
from tests.training.helpers import make_models, tiny_config

QUESTIONS = [(a, b) for a in (2, 3, 4) for b in (1, 2)]  # 6 GSM8K-format rows


@pytest.fixture
def calls(monkeypatch):
    """What was trained and evaluated: the real trainer (in this process) and evaluator, counted."""
    made = {"train": 0, "evaluate": []}
    train, evaluate = loop.train, benchmarks.evaluate_model

    def counted_train(config, given=None):
        made["train"] += 1
        return train(config, given)

    def counted_evaluate(model_path, spec, **kwargs):
        made["evaluate"].append(model_path)
        return evaluate(model_path, spec, **kwargs)

    monkeypatch.setattr(loop, "train", counted_train)
    monkeypatch.setattr(setting, "train_in_subprocess", lambda config, file: counted_train(config))
    monkeypatch.setattr(benchmarks, "evaluate_model", counted_evaluate)
    return made


def _gsm8k(tmp_path):
    rows = [{"question": f"Ann has {a} pens and gets {b} more. How many?",
             "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in QUESTIONS]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _spec(tmp_path, **keys) -> EvalSpec:
    return EvalSpec(**{"bench": "gsm8k", "data": _gsm8k(tmp_path), "max_new_tokens": 4, **keys})


def _results(where) -> dict:
    return json.loads((where / "eval" / "results.json").read_text())


def test_a_sweep_run_again_with_another_eval_limit_evaluates_again_and_keeps_the_training(tmp_path, calls):
    config = SweepConfig(train=tiny_config(tmp_path, **{"optim.max_steps": 1}), eval=_spec(tmp_path, limit=3),
                         lsps=[1.0], out=str(tmp_path / "sweep"))
    run_sweep(config)
    assert _results(tmp_path / "sweep" / "lsp1")["n"] == 3
    config.eval = _spec(tmp_path, limit=5)
    rows = run_sweep(config)
    # the results, the table and config.yaml all speak of 5 problems (the old 3-problem results were kept before)
    assert _results(tmp_path / "sweep" / "lsp1")["n"] == 5 and len(calls["evaluate"]) == 2
    assert calls["train"] == 1  # the evaluation limit is no input of the trained model
    assert "limit: 5" in (tmp_path / "sweep" / "config.yaml").read_text() and len(rows) == 1


def test_a_select_experiment_run_again_with_another_eval_limit_evaluates_its_cells_again(tmp_path, calls):
    """It used to skip every cell whose cell.json existed."""
    student, teacher = make_models(tmp_path)
    config = from_dict(SelectExperimentConfig, {
        "data": _gsm8k(tmp_path), "teacher": teacher, "methods": ["random"], "seeds": [0], "out": str(tmp_path / "s"),
        "train": {"student": student, "device": "cpu", "progress": False, "optim": {"max_steps": 1}},
        "eval": {"bench": "gsm8k", "data": _gsm8k(tmp_path), "max_new_tokens": 4, "limit": 3}})
    run_experiment(config)
    config.eval = _spec(tmp_path, limit=5)
    run_experiment(config)
    assert _results(tmp_path / "s" / "random-seed0")["n"] == 5 and len(calls["evaluate"]) == 2
    assert calls["train"] == 1  # the same selection, settings and student: its training is reused


def test_an_unchanged_rerun_recomputes_nothing(tmp_path, calls, monkeypatch):
    config = tiny_config(tmp_path, **{"optim.max_steps": 1})
    first = setting.train_and_evaluate(config, _spec(tmp_path, limit=2), tmp_path / "point", evaluate="final")

    def fail(*args, **kwargs):
        raise AssertionError("work done again")

    monkeypatch.setattr(loop, "train", fail)
    monkeypatch.setattr(benchmarks, "evaluate_model", fail)
    # the same settings, and the data file rewritten with the same rows: its content is what counts
    (tmp_path / "gsm8k.jsonl").write_text((tmp_path / "gsm8k.jsonl").read_text())
    again = setting.train_and_evaluate(config, _spec(tmp_path, limit=2), tmp_path / "point", evaluate="final")
    assert again == first


def test_a_finished_point_trained_with_another_config_is_trained_again(tmp_path, calls, capsys):
    where = tmp_path / "point"
    old = tiny_config(tmp_path, **{"optim.max_steps": 2, "optim.lr": 1e-2}, save_every=1)
    setting.train_and_evaluate(old, _spec(tmp_path, limit=2), where, evaluate="final")
    assert (where / "train" / "checkpoints" / "step-0000002").is_dir()
    new = tiny_config(tmp_path, **{"optim.max_steps": 1, "optim.lr": 1e-3})
    summary, _ = setting.train_and_evaluate(new, _spec(tmp_path, limit=2), where, evaluate="final")
    assert calls["train"] == 2 and summary["steps"] == 1 and len(calls["evaluate"]) == 2
    # trained from the start: the other run's checkpoints are gone, not resumed (or refused) as a config change
    assert not (where / "train" / "checkpoints").exists() and summary["resumed_from"] is None
    assert "lr: 0.001" in (where / "train" / "config.yaml").read_text()
    err = capsys.readouterr().err  # save_every only says how often the run was saved: not named
    assert "the trained model in" in err and "(changed: config.optim.lr, config.optim.max_steps); making" in err
    assert "the evaluation in" in err and "(changed: content.model, recorded.checkpoint_step); making" in err


def test_a_point_killed_while_training_resumes_under_the_same_key(tmp_path, calls, monkeypatch):
    config = tiny_config(tmp_path, **{"optim.max_steps": 3}, save_every=1)
    step = loop.Trainer._optimizer_step

    def killed_at_step_3(self, index, state):
        if index == 2:
            raise KeyboardInterrupt("killed")
        return step(self, index, state)

    monkeypatch.setattr(loop.Trainer, "_optimizer_step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        setting.train_and_evaluate(config, _spec(tmp_path, limit=2), tmp_path / "point", evaluate="final")
    monkeypatch.setattr(loop.Trainer, "_optimizer_step", step)
    summary, _ = setting.train_and_evaluate(config, _spec(tmp_path, limit=2), tmp_path / "point", evaluate="final")
    assert summary["resumed_from"].endswith("step-0000002") and summary["steps"] == 3


def test_a_point_whose_training_data_changed_is_trained_again(tmp_path, calls, capsys):
    where = tmp_path / "point"
    config = tiny_config(tmp_path, **{"optim.max_steps": 1})
    setting.train_and_evaluate(config, _spec(tmp_path, limit=2), where, evaluate="final")
    data = tmp_path / "train.jsonl"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:12]))  # 16 rows cut to 12, same path
    summary, _ = setting.train_and_evaluate(config, _spec(tmp_path, limit=2), where, evaluate="final")
    assert calls["train"] == 2 and summary["records"] == 9  # 12 rows less 3 for validation
    err = capsys.readouterr().err
    assert "the trained model in" in err and "(changed: content.data.path); making it again" in err


@pytest.fixture
def fake_evaluate(monkeypatch):
    calls = []

    def fake(model_path, spec, *, out_dir, progress=True, device="auto"):
        calls.append(model_path)
        results = {"bench": spec.bench, "accuracy": 0.5, "ci95": [0.1, 0.9], "n": spec.limit}
        benchmarks.write_eval(out_dir, results, [])
        return results

    monkeypatch.setattr(benchmarks, "evaluate_model", fake)
    return calls


def test_the_demo_never_reads_a_results_file_planted_in_its_folder(tmp_path, fake_evaluate, capsys):
    planted = tmp_path / "eval" / "teacher" / "results.json"
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({"bench": "world", "accuracy": 0.99, "ci95": [0.98, 1.0], "n": 3}))
    baselines = demo.evaluate_baselines(tmp_path, EvalSpec(limit=3), progress=False)
    assert baselines["teacher"]["accuracy"] == 0.5 and baselines["student"]["accuracy"] == 0.5
    assert fake_evaluate == ["world:teacher", "world:student"]
    assert "is not of what is asked now (no key stored beside it); making it again" in capsys.readouterr().err
    assert demo.evaluate_baselines(tmp_path, EvalSpec(limit=3), progress=False) == baselines
    assert len(fake_evaluate) == 2  # made under this key: reused
    demo.evaluate_baselines(tmp_path, EvalSpec(limit=4), progress=False)
    assert len(fake_evaluate) == 4 and json.loads(planted.read_text())["n"] == 4
