"""``cotdistill compare A B``: two eval folders written by hand, compared problem by problem."""

from __future__ import annotations

import json

import pytest
import yaml

from cotdistill.cli import main


def _eval_folder(folder, outcomes: list[bool]):
    """An eval folder as `cotdistill eval` leaves it: results.json and one samples.jsonl row per problem."""
    folder.mkdir(parents=True)
    rows = [{"bench": "world", "prompt_index": i, "sample_index": 0, "prompt": f"q{i}", "response": "r",
             "correct": c} for i, c in enumerate(outcomes)]
    (folder / "results.json").write_text(json.dumps({"n": len(rows), "accuracy": sum(outcomes) / len(rows)}))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def issue_pair(tmp_path):
    """The issue's 300 problems: 36 solved by both, 61 by A only, 31 by B only, 172 by neither."""
    a = [True] * 97 + [False] * 203
    b = [True] * 36 + [False] * 61 + [True] * 31 + [False] * 172
    return _eval_folder(tmp_path / "distilled" / "eval", a), _eval_folder(tmp_path / "original" / "eval", b)


def test_compare_prints_the_paired_difference_and_retention(issue_pair, capsys):
    a, b = issue_pair
    assert main(["compare", str(a / "results.json"), str(b), "--names", "distilled,original",
                 "--resamples", "2000"]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    # +0.100 [0.1 -+ 1.96 * sqrt(89/299) / sqrt(300)], p = 2 * P(X <= 31 | 92, 1/2) = 0.0023
    assert first == ("distilled vs original: +0.100 [+0.038, +0.162], McNemar p = 0.002 (61 vs 31 problems); "
                     "a difference can be claimed at 0.05: distilled scores higher")
    # 97/300 / (67/300) = 1.448
    assert second.startswith("retention of distilled relative to original: 1.448 [")
    assert second.endswith("(paired bootstrap over 300 problems, 2000 resamples)")


def test_compare_json_and_default_names(issue_pair, capsys):
    a, b = issue_pair
    assert main(["compare", str(b), str(a), "--json", "seed=5", "resamples=500"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["names"] == [str(b), str(a)] and got["results"] == [str(b), str(a)]
    comparison = got["comparison"]
    assert comparison["difference"] == pytest.approx(-0.1) and (comparison["a_better"], comparison["b_better"]) \
        == (31, 61)
    assert comparison["p_value"] == pytest.approx(0.0023146, abs=1e-6) and comparison["test"] == "McNemar"
    retention = got["retention"]
    assert retention["ratio"] == pytest.approx(67 / 97) and (retention["resamples"], retention["seed"]) == (500, 5)
    low, high = retention["ci95"]
    assert low < 67 / 97 < high


def test_problem_sets_that_differ_exit_2_with_one_line(tmp_path, capsys):
    a = _eval_folder(tmp_path / "a", [True, False, True])
    b = _eval_folder(tmp_path / "b", [True, False])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: the two result sets did not answer the same problems: 1 only in the first, "
                          "0 only in the second (of 3 and 2)")


def test_two_evaluations_are_needed(tmp_path, capsys):
    a = _eval_folder(tmp_path / "a", [True])
    assert main(["compare", str(a)]) == 2
    assert "results must name two evaluations (A and B), found 1" in capsys.readouterr().err
    assert main(["compare"]) == 2
    assert "compare needs two evaluations" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "nothing")]) == 2
    assert "nothing: no such file or folder" in capsys.readouterr().err
    assert main(["compare", str(a), str(a), "--names", "one"]) == 2
    assert "names must be two" in capsys.readouterr().err


def test_the_printed_config_holds_both_evaluations(tmp_path, capsys):
    assert main(["compare", "runs/a/eval", "runs/b/eval/results.json", "--names", "x,y", "--print-config"]) == 0
    got = yaml.safe_load(capsys.readouterr().out)
    assert got == {"results": ["runs/a/eval", "runs/b/eval/results.json"], "names": ["x", "y"],
                   "resamples": 10_000, "seed": 0, "json": False}
