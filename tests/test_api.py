"""The Python entry points: ``cotdistill.train`` / ``cotdistill.evaluate`` with objects or paths, types checked."""

from __future__ import annotations

import json

import pytest

import cotdistill
from cotdistill.config import ConfigError
from tests.conftest import char_tokenizer, tiny_qwen

GSM8K_ROWS = [{"question": f"Tom has {a} apples and buys {b} more. How many?",
               "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}"} for a in range(1, 7) for b in (2, 3)]
BASE = {"output_dir": "OUT", "data": {"val_fraction": 0.25}, "loss": {"distill_ratio": 0.5, "chunk_size": 64},
        "optim": {"lr": 1e-2, "batch_size": 4, "max_steps": 2, "warmup_steps": 0},
        "device": "cpu", "eval_every": 0, "save_every": 0, "progress": False}


def _config(tmp_path) -> dict:
    return {**BASE, "output_dir": str(tmp_path / "run")}


def test_the_top_level_names_are_the_functions():
    from cotdistill import evaluate, train

    assert callable(train) and callable(evaluate)
    import cotdistill.training.loop

    assert callable(cotdistill.train)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"config": 3}, "config must be a TrainConfig, a dict or a YAML path, got int"),
    ({"config": {"optim": {"lr": "fast"}}}, "optim.lr must be a number"),
    ({"config": {"optim": {"learning_rate": 1e-3}}}, "unknown config key in 'optim': learning_rate"),
    ({"student": 3}, "student must be a path, hub id or transformers PreTrainedModel, got int"),
    ({"tokenizer": {"vocab": 1}}, "tokenizer must be a path, hub id or transformers tokenizer, got dict"),
    ({"data": 42}, "data must be a path, hub id, datasets.Dataset or list of rows, got int"),
])
def test_wrong_types_are_refused_before_anything_loads(kwargs, message, monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("weights were loaded")))
    with pytest.raises(ConfigError) as err:
        cotdistill.train(**kwargs)
    assert message in str(err.value)


def test_train_and_evaluate_with_objects_in_memory(tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM

    tok = char_tokenizer()
    student, teacher = tiny_qwen(len(tok), hidden=16, layers=1, seed=0), tiny_qwen(len(tok), hidden=32, layers=1,
                                                                                    seed=1)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    rows = [{"q": r["question"], "a": r["answer"]} for r in GSM8K_ROWS]  # raw GSM8K under other column names
    config = _config(tmp_path)
    config["data"]["fields"] = {"question": "q", "answer": "a"}
    summary = cotdistill.train(config, student=student, teacher=teacher, tokenizer=tok,
                               data=datasets.Dataset.from_list(rows))
    assert summary["steps"] == 2 and summary["data_format"] == "gsm8k" and summary["records"] == 9  # 3 of 12 held out
    assert any(not (before[k] == v).all() for k, v in student.state_dict().items())  # trained in place
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "student: <in-memory Qwen2ForCausalLM>" in saved and "path: <in-memory Dataset>" in saved
    reloaded = AutoModelForCausalLM.from_pretrained(summary["final_model"])
    assert reloaded.config.hidden_size == 16

    results = cotdistill.evaluate(student, tok, bench="gsm8k", data=GSM8K_ROWS[:3], max_new_tokens=4,
                                  progress=False, out_dir=tmp_path / "eval")
    assert results["n"] == 3 and 0.0 <= results["accuracy"] <= 1.0
    assert len((tmp_path / "eval" / "samples.jsonl").read_text().splitlines()) == 3
    with pytest.raises(ConfigError, match="needs its tokenizer"):
        cotdistill.evaluate(student, bench="gsm8k", data=GSM8K_ROWS[:3])
    # a model named by path reads its own tokenizer, with rows in memory too
    by_path = cotdistill.evaluate(summary["final_model"], bench="gsm8k", data=GSM8K_ROWS[:2], max_new_tokens=4,
                                  progress=False, device="cpu")
    assert by_path["n"] == 2
    # and the eval section of a config, as a dict, is the same spec
    by_spec = cotdistill.evaluate(student, tok, spec={"bench": "gsm8k", "max_new_tokens": 4}, data=GSM8K_ROWS[:2],
                                  progress=False)
    assert by_spec["n"] == 2 and by_spec["generation"]["max_new_tokens"] == 4
    with pytest.raises(ConfigError, match="give limit in spec"):
        cotdistill.evaluate(student, tok, spec={"bench": "gsm8k"}, limit=3, data=GSM8K_ROWS[:2])
    # the keywords are EvalSpec's own fields (preset and prompt_template too), checked as the config loader does
    templated = cotdistill.evaluate(student, tok, bench="gsm8k", data=GSM8K_ROWS[:2], max_new_tokens=4,
                                    prompt_template="Q: {problem}", progress=False)
    assert templated["prompt_template"] == "Q: {problem}"
    with pytest.raises(ConfigError, match="max_tokens"):
        cotdistill.evaluate(student, tok, bench="gsm8k", data=GSM8K_ROWS[:2], max_tokens=4)


def test_train_from_paths_and_a_yaml(tmp_path):
    from tests.training.helpers import make_data, make_models

    student, teacher = make_models(tmp_path)
    data = make_data(tmp_path)
    yaml_path = tmp_path / "run.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump({**_config(tmp_path), "student": student, "teacher": teacher,
                                         "data": {"path": data, "val_fraction": 0.25}}))
    summary = cotdistill.train(str(yaml_path), overrides=["optim.max_steps=1"])
    assert summary["steps"] == 1
    assert json.loads((tmp_path / "run" / "run_summary.json").read_text())["steps"] == 1


def test_a_student_object_without_a_tokenizer_is_refused(tmp_path):
    tok = char_tokenizer()
    with pytest.raises(ConfigError.__mro__[1], match="needs its tokenizer"):  # a UserError
        cotdistill.train(_config(tmp_path), student=tiny_qwen(len(tok)), data=GSM8K_ROWS)


@pytest.mark.parametrize("name", ["nope.yaml", "."])
def test_a_config_path_that_is_no_file_is_the_librarys_user_error(tmp_path, monkeypatch, name):
    """``cotdistill.train("nope.yaml")`` raised FileNotFoundError: a library caller catching UserError missed it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        cotdistill.train(name)
    assert str(err.value).startswith(f"config {name}: ") and "YAML file" in str(err.value)
