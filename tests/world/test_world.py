"""The embedded world: deterministic generator, style tags, packaged tokenizer and models, and the build."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("style", ["teacher", "student"])
def test_every_sentence_has_a_tag_recoverable_from_its_text(style):
    for problem in generate_split("train", 200, seed=3):
        rec = render(problem, style)
        assert all(tag in ("teacher", "student", "shared") for _, tag in rec.sentences)
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
    assert n_t > 3 * n_s
    rec = world_records("test", "teacher", 1)[0]
    ex = encode_record(tok, rec, EncodeConfig(sections="cot"))
    cot_tokens = tok.convert_ids_to_tokens([t for t, s in zip(ex.input_ids, ex.segments) if s == COT])
    assert cot_tokens[0] == "<think>" and cot_tokens[-1] == "</think>"
    manifest = json.loads((WORLD_ASSETS / "manifest.json").read_text())
    t_acc, s_acc = (manifest["models"][m]["test"]["accuracy"] for m in ("teacher", "student"))
    assert t_acc > s_acc + 0.15


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
    from cotdistill.evaluate.grade import grade
    from cotdistill.world.candidates import sample_candidates

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
