"""Benchmark files as users have them: difficulty levels that are words or fractions, and prompts or answers of the
wrong type — each either evaluated or refused with its file and line before any generation (issue 26, cases 5, 11
and 14)."""

from __future__ import annotations

import json

import pytest

from cotdistill.data.records import DataError
from cotdistill.evaluation import benchmarks
from cotdistill.evaluation.benchmarks import evaluate, load_benchmark
from cotdistill.generate import Generation, GenerationConfig, GenerationStats


def _write(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _answer_seven(monkeypatch) -> None:
    """``generate`` answers every question with 7."""
    def fake(model, tokenizer, questions, gen, **kwargs):
        out = [Generation(i, 0, "so the answer is \\boxed{7}", 5, False) for i in range(len(questions))]
        return out, GenerationStats(1.0, 5 * len(out))

    monkeypatch.setattr(benchmarks, "generate", fake)


def test_difficulty_words_and_fractions_are_reported_not_a_crash_after_generation(tmp_path, monkeypatch):
    """``sorted(levels, key=int)`` raised ValueError on "easy" and "1.5" once every answer had been generated."""
    _answer_seven(monkeypatch)
    rows = [{"prompt": "a", "answer": "7", "difficulty": "easy"}, {"prompt": "b", "answer": "8", "difficulty": 1.5},
            {"prompt": "c", "answer": "7", "difficulty": "easy"}, {"prompt": "d", "answer": "7", "difficulty": 10}]
    items = load_benchmark("jsonl", _write(tmp_path / "d.jsonl", rows))
    results, _ = evaluate(None, None, items, GenerationConfig(), bench="jsonl")
    # words among the levels: sorted as text ("1.5" < "10" < "easy"); easy: 2 of 2 right, 1.5: 0 of 1, 10: 1 of 1
    assert list(results["by_difficulty"].items()) == [("1.5", 0.0), ("10", 1.0), ("easy", 1.0)]
    assert list(results["by_difficulty_ci95"]) == ["1.5", "10", "easy"]


def test_numeric_difficulty_levels_sort_as_numbers():
    from cotdistill.evaluation.benchmarks import difficulty_levels

    assert difficulty_levels(["10", "2", "1.5", "-1"]) == ["-1", "1.5", "2", "10"]  # as text: -1, 1.5, 10, 2
    assert difficulty_levels(["b", "10", "2"]) == ["10", "2", "b"]
    assert difficulty_levels(["nan", "2", "1"]) == ["1", "2", "nan"]  # NaN has no place among numbers: text
    assert difficulty_levels([]) == []


@pytest.mark.parametrize("row, found", [
    ({"prompt": 5, "answer": "2"}, "found int"),
    ({"prompt": ["1+1?"], "answer": "2"}, "found list"),
    ({"prompt": "1+1?", "answer": ["2"]}, "found list"),
    ({"prompt": "1+1?", "answer": {"value": 2}}, "found dict"),
])
def test_a_prompt_or_answer_of_the_wrong_type_is_refused_with_its_line(tmp_path, row, found):
    path = _write(tmp_path / "b.jsonl", [{"prompt": "ok?", "answer": "1"}, row])
    with pytest.raises(DataError) as err:
        load_benchmark("jsonl", path)
    message = str(err.value)
    assert message.startswith(f"{path}, line 2: expected a ") and message.endswith(found)


def test_numbers_are_still_answers_and_a_gsm8k_solution_must_be_text(tmp_path):
    path = _write(tmp_path / "n.jsonl", [{"prompt": "1+1?", "answer": 2}, {"prompt": "half?", "answer": 0.5}])
    assert [it.gold for it in load_benchmark("jsonl", path)] == ["2", "0.5"]
    # str(["r #### 5"]) used to end in "#### 5']": graded against the gold "5']"
    path = _write(tmp_path / "g.jsonl", [{"question": "q", "answer": ["r #### 5"]}])
    with pytest.raises(DataError, match=r"g.jsonl, line 1: expected a string answer .*; found list"):
        load_benchmark("gsm8k", path)
