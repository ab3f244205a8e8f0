"""Candidate traces sampled from several models on the world's problems, graded, for the selection experiment."""

from __future__ import annotations

from cotdistill.world.generator import style_of


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
