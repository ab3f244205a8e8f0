"""Guards every stage keeps: one writer per output folder (trace, select's score cache), and a trained model is
evaluated with the system prompt it was trained with."""

from __future__ import annotations

import pytest

from cotdistill.evaluation.spec import EvalSpec
from cotdistill.outputs import OutputInUseError, output_lock
from cotdistill.provenance.trace import TraceConfig
from cotdistill.stages.select import SelectConfig, select_records
from cotdistill.stages.setting import evaluated_as_trained
from cotdistill.stages.trace import run_trace
from cotdistill.training.config import TrainConfig

WORLD = {"teacher": "world:teacher", "student": "world:student"}


def test_a_second_trace_into_the_same_folder_is_refused(tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"prompt": "p", "response": "r. s."}\n')
    config = TraceConfig(samples=str(samples), distilled="world:student", out=str(tmp_path / "out"), **WORLD)
    with output_lock(tmp_path / "out"), pytest.raises(OutputInUseError, match="another run"):
        run_trace(config, progress=False)


def test_a_second_selection_filling_the_same_score_cache_is_refused(tmp_path):
    data = tmp_path / "cands.jsonl"
    data.write_text('{"prompt": "p", "cot": "c", "answer": "a"}\n')
    config = SelectConfig(data=str(data), out=str(tmp_path / "sel.jsonl"), per_question=True,
                          cache_dir=str(tmp_path / "cache"), **WORLD)
    with output_lock(tmp_path / "cache"), pytest.raises(OutputInUseError, match="another run"):
        select_records(config, progress=False)


def test_a_model_trained_with_a_system_prompt_is_evaluated_with_it():
    trained = TrainConfig(data={"system": "replace:Think step by step."})
    assert evaluated_as_trained(EvalSpec(), trained).system == "Think step by step."
    assert evaluated_as_trained(EvalSpec(system="Other."), trained).system == "Other."  # named: kept
    assert evaluated_as_trained(EvalSpec(), TrainConfig()).system is None  # drop: no system prompt
