"""Several responses per question, sampled at a temperature from one or more source models (the embedded teacher
by default), as candidate training records for data selection: some are wrong or wander, and with several sources
they differ in style, which is what selection has to sort out."""

from __future__ import annotations

from pathlib import Path

from cotdistill.data.formats import write_jsonl
from cotdistill.data.records import DataError, ReasoningRecord, check_record, split_think
from cotdistill.evaluation.grade import grade
from cotdistill.generate import GenerationConfig, generate
from cotdistill.world import WORLD_MAX_NEW_TOKENS, world_records


def sample_candidates(sources: str | list[str], out: str | Path, *, questions: int = 200, samples: int = 4,
                      temperature: float = 1.0, seed: int = 0, max_new_tokens: int = WORLD_MAX_NEW_TOKENS,
                      progress: bool = True) -> dict:
    """``samples`` responses per question from each source model, written as one candidates file. Every record
    carries ``question_id``, ``source``, ``gold`` and ``correct`` in its metadata."""
    sources = [sources] if isinstance(sources, str) else list(sources)
    problems = world_records("train", "teacher", questions)
    records, per_source = [], {}
    for source in sources:
        got, unparsable = _sample_one_source(source, problems, samples, temperature, seed, max_new_tokens, progress)
        records += got
        per_source[source] = {"candidates": len(got), "unparsable": unparsable,
                              "correct_share": sum(r.metadata["correct"] for r in got) / max(len(got), 1)}
    write_jsonl(records, out, "cot")
    return {"candidates": len(records), "unparsable": sum(v["unparsable"] for v in per_source.values()),
            "questions": questions, "correct_share": sum(r.metadata["correct"] for r in records) / max(len(records), 1),
            "sources": per_source}


def _sample_one_source(source: str, problems: list[ReasoningRecord], samples: int, temperature: float, seed: int,
                       max_new_tokens: int, progress: bool) -> tuple[list[ReasoningRecord], int]:
    from cotdistill.models import load_model, load_tokenizer, pick_device

    tokenizer = load_tokenizer(source)
    model = load_model(source, pick_device("auto"))
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, samples=samples, seed=seed)
    generations, _ = generate(model, tokenizer, [p.prompt for p in problems], gen, progress=progress)
    records, unparsable = [], 0
    for g in generations:
        problem = problems[g.prompt_index]
        try:
            cot, answer = split_think(g.text, "sample", g.prompt_index)
            rec = check_record(ReasoningRecord(problem.prompt, cot, answer), "sample", g.prompt_index)
        except DataError:
            unparsable += 1
            continue
        rec.metadata = {"question_id": problem.metadata["uid"], "sample": g.sample_index, "source": source,
                        "gold": problem.metadata["gold"], "correct": grade(answer, problem.metadata["gold"])}
        records.append(rec)
    return records, unparsable
