"""What trace and correlate read from files is checked where it is read: a ``correct`` that is not true/false, a
``bench`` that is not a name, a trace folder given twice, a NaN or missing accuracy (issue 26, cases 11 and 14)."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import spearmanr

from cotdistill.data.records import DataError
from cotdistill.errors import UserError
from cotdistill.provenance.correlate import correlate_dirs
from cotdistill.provenance.trace import load_samples


def _samples(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps({"prompt": "p", "response": "r.", **r}) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("value, found", [("false", "'false'"), ("true", "'true'"), (2, "2"), (None, "None"),
                                          (0.5, "0.5")])
def test_a_correct_that_is_not_true_or_false_is_refused(tmp_path, value, found):
    """``bool("false")`` is True: a string "false" was counted as a correct answer."""
    path = _samples(tmp_path / "s.jsonl", [{"correct": True}, {"correct": value}])
    with pytest.raises(DataError) as err:
        load_samples(path)
    assert str(err.value) == f"{path}, line 2: expected correct as true/false (or 1/0); found {found}"


def test_true_false_one_zero_and_no_correct_at_all_are_read(tmp_path):
    path = _samples(tmp_path / "s.jsonl", [{"correct": True}, {"correct": 0}, {"correct": 1.0}, {}])
    assert [s.get("correct") for s in load_samples(path)] == [True, 0, 1.0, None]


@pytest.mark.parametrize("bench", [["gsm8k"], {"name": "gsm8k"}, 3])
def test_a_bench_that_is_not_a_name_is_refused_before_any_scoring(tmp_path, bench):
    """A list ``bench`` failed as an unhashable dict key after every model had scored every action."""
    path = _samples(tmp_path / "s.jsonl", [{"bench": "gsm8k"}, {"bench": bench}])
    with pytest.raises(DataError) as err:
        load_samples(path)
    assert str(err.value) == f"{path}, line 2: expected bench as a string; found {type(bench).__name__}"


def _trace(root, name: str, teacher: float) -> str:
    folder = root / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"overall": {"teacher": teacher, "boosted": 0.1}}))
    return str(folder)


def _results(root, name: str, accuracy) -> str:
    path = root / f"{name}.json"
    path.write_text(json.dumps({"accuracy": accuracy}))
    return str(path)


def test_one_trace_folder_given_twice_is_refused(tmp_path):
    """The points were keyed by folder: the second silently replaced the first and ρ came from one point fewer."""
    a, b = _trace(tmp_path, "a", 0.1), _trace(tmp_path, "b", 0.2)
    results = [_results(tmp_path, name, acc) for name, acc in (("ra", 0.5), ("rb", 0.6), ("rc", 0.7))]
    with pytest.raises(UserError, match=f"{a}/: given twice"):  # the same folder, written otherwise
        correlate_dirs([(a, results[0]), (b, results[1]), (f"{a}/", results[2])])
    with pytest.raises(UserError, match=f"{a}: given twice"):  # the very same string
        correlate_dirs([(a, results[0]), (a, results[1])])


def test_a_nan_accuracy_is_left_out_of_rho_with_a_word(tmp_path, caplog):
    """Ranking with a NaN put it anywhere: ρ = 0.800 was printed where the three valid points give −1."""
    shares, accuracies = [0.1, 0.2, 0.3, 0.4], [0.9, 0.8, float("nan"), 0.7]
    pairs = [(_trace(tmp_path, f"t{i}", s), _results(tmp_path, f"r{i}", a))
             for i, (s, a) in enumerate(zip(shares, accuracies))]
    result = correlate_dirs(pairs)
    assert result["spearman_teacher_share_vs_accuracy"] == pytest.approx(-1.0, abs=1e-12)
    assert result["spearman_teacher_share_vs_accuracy"] == pytest.approx(
        spearmanr([0.1, 0.2, 0.4], [0.9, 0.8, 0.7]).statistic, abs=1e-12)
    assert result["n"] == 3 and result["left_out"] == [pairs[2][0]]
    assert len(result["table"]) == 4 and math.isnan(result["table"][2]["accuracy"])  # still shown
    assert f"{pairs[2][0]}: accuracy is nan, not a finite number; left out of Spearman's rho" in caplog.text


@pytest.mark.parametrize("content, found", [
    ('{"n": 3}', "no accuracy among keys ['n']"),
    ('{"accuracy": "0.5"}', "accuracy '0.5'"),
    ('{"accuracy": true}', "accuracy True"),
    ('{"accuracy": 0.5', "invalid JSON (Expecting ',' delimiter"),
    ('[0.5]', "list"),
])
def test_a_results_file_without_a_numeric_accuracy_is_a_located_error(tmp_path, content, found):
    trace = _trace(tmp_path, "t", 0.1)
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(DataError) as err:
        correlate_dirs([(trace, str(tmp_path / "results.json"))])
    assert str(err.value).startswith(f"{tmp_path / 'results.json'}: expected ") and found in str(err.value)
