"""Selection scores match hand computation; selection keeps exactly what was asked; cached scores are reused."""

from __future__ import annotations

import json
import math

import pytest

from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.data.records import ReasoningRecord
from cotdistill.select import scores as scores_module
from cotdistill.select.methods import METHODS, keep_count, method_scores, select_per_dataset, select_per_question
from cotdistill.select.scores import CandidateScore, score_candidates
from cotdistill.stages.select import SelectConfig, select_records


def test_scores_match_hand_computation(tmp_path, monkeypatch):
    rec = ReasoningRecord("q", "A b.\nC d.", "E.")
    # actions of "<think>\nA b.\nC d.\n</think>\n\nE.": <think>, "A b.", "C d.", </think>, "E."
    fake = {"teacher": [[2, math.log(0.9) * 2], [1, math.log(0.9)], [1, math.log(0.5)], [1, 0.0], [1, math.log(0.3)]],
            "student": [[2, math.log(0.5) * 2], [1, math.log(0.85)], [1, math.log(0.9)], [1, 0.0], [1, math.log(0.3)]]}

    def fake_scores(model_path, keys, prompts, responses, actions, cache_file, **kw):
        assert [a.text for a in actions[0]] == ["<think>", "A b.", "C d.", "</think>", "E."]
        return {keys[0]: fake[model_path]}

    monkeypatch.setattr(scores_module, "score_with_cache", fake_scores)
    (s,) = score_candidates([rec], "teacher", "student", tmp_path, margin=0.1, progress=False)
    # per action p_T - p_S: 0.4 (teacher), 0.05 (common), -0.4 (student), 0 (common), 0 (common)
    assert (s.teacher_actions, s.student_actions, s.common_actions, s.actions) == (1, 1, 3, 5)
    assert s.teacher_share == pytest.approx(0.2)
    expected_mean = (2 * math.log(0.5) + math.log(0.85) + math.log(0.9) + math.log(0.3)) / 6
    assert s.student_logprob_mean == pytest.approx(expected_mean)
    assert s.student_tokens == 6


def _score(t, n=10, mean=-1.0):
    return CandidateScore("k", n, t, 0, n - t, mean, n * 3)


def test_methods_and_modes():
    scores = [_score(1, mean=-0.1), _score(4, n=20, mean=-2.0), _score(3, n=5, mean=-0.5), _score(0)]
    assert method_scores("teacher", scores) == [1, 4, 3, 0]
    assert method_scores("teacher_share", scores) == [0.1, 0.2, 0.6, 0.0]
    assert method_scores("grape", scores) == [-0.1, -2.0, -0.5, -1.0]
    assert method_scores("shortest", scores) == [-30, -60, -15, -30]
    assert select_per_question(["a", "a", "b", "b"], [1, 4, 3, 0]) == [1, 2]
    assert select_per_dataset([5, 1, 4, 2, 3], 0.4) == [0, 2]
    assert select_per_dataset([5, 1, 4, 2, 3], 3) == [0, 2, 4]
    assert keep_count(10, 0.25) == 2 and keep_count(10, 1.0) == 10
    with pytest.raises(ValueError, match="only 10 exist"):
        keep_count(10, 11)
    with pytest.raises(ValueError, match="method must be one of"):
        method_scores("best", scores)


WORLD = {"teacher": "world:teacher", "student": "world:student"}


def test_select_cli_keeps_exact_fraction_and_reuses_cache(tmp_path, monkeypatch):
    records = [ReasoningRecord(f"What is {i}+1?", f"{i} + 1 = {i + 1}.", f"The answer is \\boxed{{{i + 1}}}.",
                               {"question_id": i // 2}) for i in range(10)]
    data = tmp_path / "cands.jsonl"
    write_jsonl(records, data, "messages")
    info = select_records(SelectConfig(data=str(data), **WORLD, method="teacher", out=str(tmp_path / "sel.jsonl"),
                                       keep=0.3, device="cpu"), progress=False)
    assert info["selected"] == 3 and len(load_records(tmp_path / "sel.jsonl").records) == 3
    rows = [json.loads(line) for line in open(tmp_path / "sel.scores.jsonl")]
    assert sum(r["selected"] for r in rows) == 3
    per_q = select_records(SelectConfig(data=str(data), **WORLD, method="grape", out=str(tmp_path / "pq.jsonl"),
                                        per_question=True, device="cpu"), progress=False)
    assert per_q["selected"] == 5

    def no_model(*a, **k):
        raise AssertionError("a model was loaded although every score is cached")

    monkeypatch.setattr("cotdistill.models.load_model", no_model)
    again = select_records(SelectConfig(data=str(data), **WORLD, method="shortest", out=str(tmp_path / "s2.jsonl"),
                                        keep=2, cache_dir=str(tmp_path / "sel.score-cache")), progress=False)
    assert again["selected"] == 2


@pytest.mark.parametrize("method, out_name", [("teacher", "in.jsonl"), ("teacher", "in.scores.jsonl.sel"),
                                              ("grap", "picked.jsonl")])
def test_select_refuses_an_output_over_its_input_or_an_unknown_method_before_scoring(tmp_path, method, out_name):
    """``select in.jsonl --out in.jsonl`` overwrote the dataset (20 lines → 2); ``--method grap`` failed only after
    both models had scored everything. Both are now one-line errors (exit 2) before any model loads."""
    from cotdistill.cli import main
    from cotdistill.data.formats import write_jsonl
    from cotdistill.world import world_records

    data = tmp_path / "in.jsonl"
    write_jsonl(world_records("train", "teacher", 4, min_steps=2, max_steps=2), data, "messages")
    before = data.read_bytes()
    out = tmp_path / out_name
    if out_name.endswith(".sel"):  # an output whose scores file would be the input
        data.rename(tmp_path / "in.sel.scores.jsonl")
        data, out = tmp_path / "in.sel.scores.jsonl", tmp_path / "in.sel.jsonl"
    argv = ["select", str(data), "--teacher", "no/such/model", "--student", "no/such/model", "--method", method,
            "--per-question", "--out", str(out), "--device", "cpu"]
    if method in METHODS:
        code = main(argv)
    else:  # not one of --method's choices (SelectConfig.method's Literal): argparse's usage error
        with pytest.raises(SystemExit) as stop:
            main(argv)
        code = stop.value.code
    assert code == 2 and data.read_bytes() == before
    assert not list(tmp_path.glob("*.score-cache"))  # nothing was scored


def test_a_shared_score_cache_never_serves_other_models(tmp_path):
    """With teacher and student swapped over one cache folder, select used to return the first run's scores."""
    from cotdistill.select.scores import score_candidates
    from cotdistill.world import world_records
    from tests.conftest import char_tokenizer, tiny_qwen
    from tests.provenance.test_scoring import _save

    tok = char_tokenizer()
    a, b = (_save(tiny_qwen(len(tok), seed=s), tok, tmp_path / f"m{s}") for s in (1, 2))
    records = world_records("train", "teacher", 3, min_steps=2, max_steps=2)
    ab = score_candidates(records, a, b, tmp_path / "cache", device="cpu", progress=False)
    ba = score_candidates(records, b, a, tmp_path / "cache", device="cpu", progress=False)
    fresh = score_candidates(records, b, a, tmp_path / "fresh", device="cpu", progress=False)
    assert ba == fresh and [s.student_logprob_mean for s in ba] != [s.student_logprob_mean for s in ab]


def test_keep_count_rounds_down_keeps_at_least_one_and_refuses_zero():
    from cotdistill.select.methods import keep_count

    assert keep_count(10, 0.25) == 2 and keep_count(10, 0.01) == 1 and keep_count(10, 1.0) == 10
    assert keep_count(10, 3) == 3
    for bad in (0, -0.5):
        with pytest.raises(ValueError, match="keep must be > 0"):
            keep_count(10, bad)
    with pytest.raises(ValueError, match="asks for 11"):
        keep_count(10, 11)
