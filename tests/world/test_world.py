"""The embedded world: deterministic generator, style tags, packaged tokenizer and models, and the build."""

from __future__ import annotations

import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cotdistill.cli import main
from cotdistill.data.encode import COT, EncodeConfig, encode_record
from cotdistill.models import WORLD_ASSETS, resolve
from cotdistill.world import world_records
from cotdistill.world.generator import generate_split, render, style_of


def test_generator_is_deterministic_and_splits_differ():
    a = [p.question() for p in generate_split("test", 50, seed=0)]
    assert a == [p.question() for p in generate_split("test", 50, seed=0)]
    assert a != [p.question() for p in generate_split("train", 50, seed=0)]
    assert a[:10] == [p.question() for p in generate_split("test", 10, seed=0)]  # a prefix is stable


@pytest.mark.parametrize("style", ["teacher", "student", "narrative"])
def test_every_sentence_has_a_tag_recoverable_from_its_text(style):
    for problem in generate_split("train", 200, seed=3):
        rec = render(problem, style)
        assert all(tag in ("teacher", "student", "shared", "narrative") for _, tag in rec.sentences)
        assert [style_of(s) for s, _ in rec.sentences] == [t for _, t in rec.sentences]
        values = problem.values
        assert all(0 < v <= 999 for v in values) and rec.gold == str(values[-1])
    assert style_of("The weather is nice.") == "unknown"


def test_difficulty_cycles_over_levels():
    probs = generate_split("test", 10, seed=0)
    assert [p.difficulty for p in probs] == [2, 3, 4, 5, 6, 2, 3, 4, 5, 6]


def test_packaged_assets_load_offline_and_template_puts_think_where_segments_expect():
    tok = AutoTokenizer.from_pretrained(resolve("world:tokenizer"))
    for name in ("teacher", "student"):
        model = AutoModelForCausalLM.from_pretrained(resolve(f"world:{name}"))
        assert model.config.vocab_size == len(tok)
    teacher = AutoModelForCausalLM.from_pretrained(resolve("world:teacher"))
    student = AutoModelForCausalLM.from_pretrained(resolve("world:student"))
    n_t, n_s = (sum(p.numel() for p in m.parameters()) for m in (teacher, student))
    assert n_t > 1.5 * n_s
    rec = world_records("test", "teacher", 1)[0]
    ex = encode_record(tok, rec, EncodeConfig(sections="cot"))
    cot_tokens = tok.convert_ids_to_tokens([t for t, s in zip(ex.input_ids, ex.segments) if s == COT])
    assert cot_tokens[0] == "<think>" and cot_tokens[-1] == "</think>"
    manifest = json.loads((WORLD_ASSETS / "manifest.json").read_text())
    teacher_ci, student_ci = (manifest["properties"][m]["ci95"] for m in ("teacher", "student"))
    assert teacher_ci[0] > student_ci[1]  # the teacher is clearly ahead: CI95s apart


def test_quick_build_runs(tmp_path):
    assert main(["world", "build", "--out", str(tmp_path / "w"), "--quick"]) == 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert set(manifest["models"]) == {"teacher", "student"}
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "w" / "teacher")
    assert isinstance(model(input_ids=torch.tensor([[1, 2, 3]])).logits, torch.Tensor)


def test_export_writes_messages_records(tmp_path):
    out = tmp_path / "w.jsonl"
    assert main(["world", "export", "--split", "validation", "--style", "student", "--n", "5", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in open(out)]
    assert len(rows) == 5 and rows[0]["messages"][1]["content"].startswith("<think>\nStart:")


def test_candidates_from_two_sources_share_question_ids_and_are_graded(tmp_path):
    from cotdistill.data.formats import load_records
    from cotdistill.evaluation.grade import grade
    from cotdistill.stages.world_candidates import sample_candidates

    info = sample_candidates(["world:teacher", "world:student"], tmp_path / "c.jsonl", questions=2, samples=1,
                             max_new_tokens=256, temperature=0.7, progress=False)
    records = load_records(tmp_path / "c.jsonl").records
    assert info["candidates"] == len(records) and info["candidates"] + info["unparsable"] == 4
    for source in ("world:teacher", "world:student"):
        mine = [r for r in records if r.metadata["source"] == source]
        assert len(mine) == info["sources"][source]["candidates"]
        assert {r.metadata["question_id"] for r in mine} <= {"train-0", "train-1"}
    for r in records:  # the stored grade is the grade of the stored answer
        assert r.metadata["correct"] == grade(r.answer, r.metadata["gold"])
    # the two models write in their own styles (seeded sampling: the same text every run)
    expected = {"world:teacher": "teacher", "world:student": "student"}
    assert all(style_of(r.cot.strip().splitlines()[0]) == expected[r.metadata["source"]] for r in records)


def test_teacher_traces_of_one_problem_differ_in_optional_content_only():
    from random import Random

    from cotdistill.world.generator import OPTIONAL_TEACHER, Verbosity

    problem = generate_split("test", 5, seed=0)[4]  # six steps
    traces = [render(problem, "teacher", Random(seed)) for seed in range(20)]
    optional = [sum(bool(OPTIONAL_TEACHER.match(s)) for s, _ in t.sentences) for t in traces]
    assert len(set(optional)) > 5  # samples of one question carry different amounts of teacher-only content
    required = [[s for s, _ in t.sentences if not OPTIONAL_TEACHER.match(s)] for t in traces]
    assert all(r == required[0] for r in required)  # ... and the same required steps and answer
    bare = render(problem, "teacher", Random(0), Verbosity(0, 0, 0, 0))
    full = render(problem, "teacher", Random(0), Verbosity(1, 1, 1, 1))
    assert not any(OPTIONAL_TEACHER.match(s) for s, _ in bare.sentences)
    # a full trace restates every step and checks every step (6 + 6), plans once, decomposes where it can
    assert sum(s.startswith(("Step", "Check")) for s, _ in full.sentences) == 12
    assert render(problem, "teacher").cot == render(problem, "teacher").cot  # seeded by the uid: reproducible


def test_decompositions_are_right_and_split_tens_from_units():
    from cotdistill.world.generator import _decomposition, _mul_decomposition

    assert _decomposition(347, "+", 28) == "First 347 + 20 = 367, then 367 + 8 = 375."
    assert _decomposition(52, "-", 17) == "First 52 - 10 = 42, then 42 - 7 = 35."
    assert _decomposition(52, "-", 30) is None and _decomposition(52, "+", 7) is None  # nothing to split
    assert _mul_decomposition(42, 3) == "First 40 * 3 = 120, then 2 * 3 = 6, and 120 + 6 = 126."


def test_base_corpus_never_uses_test_questions():
    from cotdistill.world.corpus import base_documents

    docs = list(base_documents(400, seed=0))
    test_questions = {p.question(ph) for p in generate_split("test", 300, seed=0) for ph in range(3)}
    assert not any(q in doc for doc in docs for q in test_questions)
    assert any("<think>" in d for d in docs) and any(d.startswith("Question:") for d in docs)
    assert any(re.fullmatch(r"(\d+ [-+*] \d+ = \d+\.\n?)+", d) for d in docs)  # drills


def test_step_accuracy_checks_each_equation():
    from cotdistill.world.properties import step_accuracy

    got = step_accuracy(["12 + 5 = 17.\n17 + 3 * 4 = 29.", "Check: 29 - 4 = 26. 84 / 2 = 42. 6 * 3 = 19."])
    assert got == {"equations": 5, "right": 3 / 5}


@pytest.fixture(scope="module")
def world_models():
    from cotdistill.models import load_model, load_tokenizer

    torch.manual_seed(0)
    return load_tokenizer("world:tokenizer"), load_model("world:student")


def test_original_student_continues_half_a_teacher_trace_to_an_answer(world_models):
    """The property the truncation protocol relies on, measured on the committed student: given the first half of
    a teacher trace in its chat turn, it ends with </think> and an answer rather than looping to the token limit.
    The build measured the share on 200 test problems (manifest: properties.continuation); here 40 must reach 0.8.
    (What it writes on the way is a finding, not a property: this student mostly wraps up at once with the running
    total, so its continuations are rarely right; see docs/results.md.)"""
    from cotdistill.world.properties import continuation

    tokenizer, student = world_models
    got = continuation(student, tokenizer, 40, 512, progress=False)
    assert got["finished"] >= 0.8 and got["hit_max_tokens"] == 0.0


def test_original_student_keeps_its_own_terse_habit(world_models):
    """With an empty assistant turn the student opens in its own style (provenance's ground truth). Threshold:
    0.9 of 30 responses (the build measured it on 300: properties.habit)."""
    from cotdistill.evaluation.benchmarks import evaluate, load_benchmark
    from cotdistill.generate import GenerationConfig
    from cotdistill.world.properties import first_style

    tokenizer, student = world_models
    _, samples = evaluate(student, tokenizer, load_benchmark("world", limit=30), GenerationConfig(max_new_tokens=256),
                          bench="world", progress=False)
    opened = [first_style(s["response"]) for s in samples]
    assert opened.count("student") / len(opened) >= 0.9
