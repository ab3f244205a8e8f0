"""Several teacher responses per question, sampled from the embedded teacher at a temperature, as candidate
training records for data selection (some are wrong or wander, which is the point)."""

from __future__ import annotations

from pathlib import Path

from cotdistill.data.formats import write_jsonl
from cotdistill.data.records import DataError, ReasoningRecord, check_record, split_think
from cotdistill.evaluate.grade import grade
from cotdistill.generate import GenerationConfig, generate
from cotdistill.world import world_records


def sample_candidates(teacher: str, out: str | Path, *, questions: int = 200, samples: int = 4,
                      temperature: float = 1.0, seed: int = 0, max_new_tokens: int = 320,
                      progress: bool = True) -> dict:
    from cotdistill.models import load_model, load_tokenizer, pick_device

    tokenizer = load_tokenizer(teacher)
    model = load_model(teacher, pick_device("auto"))
    problems = world_records("train", "teacher", questions)
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
        rec.metadata = {"question_id": problem.metadata["uid"], "sample": g.sample_index,
                        "gold": problem.metadata["gold"], "correct": grade(answer, problem.metadata["gold"])}
        records.append(rec)
    write_jsonl(records, out, "cot")
    return {"candidates": len(records), "unparsable": unparsable, "questions": questions,
            "correct_share": sum(r.metadata["correct"] for r in records) / max(len(records), 1)}
