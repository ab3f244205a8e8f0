from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cotdistill.evaluation import extract_answer, grade
from cotdistill.evaluation.benchmarks import load_benchmark
from cotdistill.evaluation.extract import extract_boxed, extract_gsm8k
from cotdistill.evaluation.grade import run_with_timeout


@pytest.mark.parametrize("text, answer, method", [
    ("so x = \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "boxed"),
    ("first \\boxed{1} then \\boxed{\\sqrt{\\frac{3}{4}}}", "\\sqrt{\\frac{3}{4}}", "boxed"),
    ("Natalia sold 48+24 = 72 clips.\n#### 1,234", "1234", "gsm8k"),
    ("Thus, the answer is 12 dollars.", "12 dollars", "answer_is"),
    ("The answer is $42$.", "42", "answer_is"),
    ("I think it's 7 or maybe 8", "8", "last_number"),
    ("no number here", None, "none"),
])
def test_extraction(text, answer, method):
    got = extract_answer(text)
    assert (got.answer, got.method) == (answer, method)


def test_unbalanced_box_is_not_an_answer():
    assert extract_boxed("\\boxed{\\frac{1}{2}") is None
    assert extract_gsm8k("no hashes") is None


@pytest.mark.parametrize("response, gold, ok", [
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("#### 1,234", "1234", True),
    ("The answer is 12 dollars.", "12", True),
    ("The answer is 72.", "72", True),
    ("\\boxed{13}", "12", False),
    ("nothing", "3", False),
])
def test_grading_with_math_verify(response, gold, ok):
    assert grade(response, gold) is ok


def test_grading_works_outside_the_main_thread_and_times_out():
    result = {}
    worker = threading.Thread(target=lambda: result.update(ok=grade("\\boxed{\\frac{2}{4}}", "0.5")))
    worker.start()
    worker.join()
    assert result["ok"] is True
    import time

    assert run_with_timeout(time.sleep, 5, timeout=0.1, default="timed out") == "timed out"


GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.mark.skipif(not GSM8K.exists(), reason="../shared/data/gsm8k is not present")
def test_real_gsm8k_loads():
    items = load_benchmark("gsm8k", str(GSM8K), limit=20)
    assert len(items) == 20 and all(it.gold.replace("-", "").isdigit() for it in items)


def test_benchmarks_from_local_files(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"problem": "1+1?", "answer": "2", "level": 1}\n')
    (tmp_path / "g.jsonl").write_text('{"question": "2+2?", "answer": "2+2=4\\n#### 4"}\n')
    assert load_benchmark("math500", str(tmp_path / "m.jsonl"))[0].gold == "2"
    assert load_benchmark("gsm8k", str(tmp_path / "g.jsonl"))[0].gold == "4"
    assert len(load_benchmark("world", limit=7)) == 7


def test_grading_is_strict_unless_asked_otherwise():
    unfinished = "Then 3 + 4 = 7, or maybe 7 or 9"  # never stated an answer
    assert grade(unfinished, "9") is False
    assert grade(unfinished, "9", flexible=True) is True  # the labelled flexible reading takes the last number


def test_ci95_is_wilson_for_right_wrong_scores():
    from cotdistill.evaluation.benchmarks import ci95

    # 0 of 10 right: Wilson's upper bound z²/(n+z²) = 3.8416/13.8416, where the normal interval gives [0, 0]
    assert ci95([0.0] * 10) == pytest.approx((0.0, 0.277540), abs=1e-6)
    low, high = ci95([1.0] * 5 + [0.0] * 5)  # p = 0.5, n = 10: 0.5 ± 1.96·sqrt(0.25/10 + 0.0096)/1.384
    assert (low, high) == pytest.approx((0.23659, 0.76341), abs=1e-4)


def test_the_last_gsm8k_line_and_the_last_answer_is_phrase_win():
    from cotdistill.evaluation.extract import extract_answer_is, extract_gsm8k

    assert extract_gsm8k("#### 3\nwait, no\n#### 1,234.") == "1234"
    assert extract_answer_is("First the answer is 4. Checking again, the answer is $7$.") == "7"


def test_a_grader_that_does_not_finish_in_time_grades_wrong(monkeypatch):
    import importlib
    import time

    grade_module = importlib.import_module("cotdistill.evaluation.grade")  # the package exports a function `grade`

    grade_module._warm_up()
    monkeypatch.setattr(grade_module, "_verify", lambda gold, answer: time.sleep(1.0) or True)
    assert grade_module.answers_match("1", "1", timeout=0.05) is False
    assert grade_module.run_with_timeout(lambda: time.sleep(1.0), timeout=0.05, default="late") == "late"
    assert grade_module.run_with_timeout(lambda: 1 / 0, timeout=1.0, default="crashed") == "crashed"
    assert grade_module.run_with_timeout(lambda: "done", timeout=1.0, default="late") == "done"


def test_text_answers_that_math_verify_cannot_parse_are_compared_as_text():
    from cotdistill.evaluation.grade import answers_match

    assert answers_match("no solution", " no solution ") is True
    assert answers_match("no solution", "all reals") is False
