"""The embedded world: deterministic generator, style tags, base corpus, packaged tokenizer and models (the build
that makes them is a stage: tests/stages/test_world_build.py)."""

from __future__ import annotations

import json
import re

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

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
