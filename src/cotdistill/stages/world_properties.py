"""The properties that make the world a faithful miniature, measured on the built models by the world-build stage
(here, beside it: measuring evaluates and generates, which the world's generator below them must never import).

* **accuracy** of teacher and original student on the test split, per difficulty, with CI95 (strict grading);
* **single-step arithmetic**: the share of the equations a model writes (``a op b = c``, ``a + b * c = d``) that
  are right — whether a model of this size can compute what a step needs;
* **continuation**: given the first half of a teacher-style trace inside its chat turn, does the original student
  go on to ``</think>`` and an answer, and in which style? (the truncation protocol relies on this);
* **habit**: with an empty assistant turn, does the original student write its own terse style? (provenance
  then has a known ground truth).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from cotdistill.data.encode import render_prompt
from cotdistill.evaluation.benchmarks import ci95, evaluate, load_benchmark
from cotdistill.evaluation.extract import extract_answer
from cotdistill.evaluation.grade import answers_match
from cotdistill.generate import GenerationConfig, generate_hf
from cotdistill.world import world_records
from cotdistill.world.generator import style_of

_EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+)(?: \* (\d+))? = (\d+)")


def equation_is_right(match: re.Match) -> bool:
    a, op, b, c, result = match.groups()
    a, b, result = int(a), int(b), int(result)
    if c is not None:  # the student's "before + boxes * size = after"
        return op == "+" and a + b * int(c) == result
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op]
    return value == result


def step_accuracy(texts: list[str]) -> dict:
    """Share of right equations among all equations written in ``texts``."""
    results = [equation_is_right(m) for text in texts for m in _EQUATION.finditer(text)]
    return {"equations": len(results), "right": sum(results) / len(results) if results else float("nan")}


def sentences(text: str) -> list[str]:
    return [s for s in (line.strip() for line in text.replace("<think>", "\n").replace("</think>", "\n")
                        .splitlines()) if s]


def style_shares(texts: list[str]) -> dict[str, float]:
    counts = Counter(style_of(s) for text in texts for s in sentences(text))
    total = max(sum(counts.values()), 1)
    return {tag: counts[tag] / total for tag in ("teacher", "student", "shared", "narrative", "unknown")}


def first_style(text: str) -> str:
    """The style of a response's first non-shared sentence: what habit it opened with."""
    for s in sentences(text):
        tag = style_of(s)
        if tag != "shared":
            return tag
    return "none"


def accuracy_with_styles(model, tokenizer, n: int, max_new_tokens: int, progress: bool) -> dict:
    items = load_benchmark("world", limit=n)
    results, samples = evaluate(model, tokenizer, items, GenerationConfig(max_new_tokens=max_new_tokens),
                                bench="world", progress=progress)
    responses = [s["response"] for s in samples]
    opened = Counter(first_style(r) for r in responses)
    return {"accuracy": results["accuracy"], "ci95": results["ci95"], "n": results["n"],
            "accuracy_flexible": results["accuracy_flexible"], "by_difficulty": results["by_difficulty"],
            "by_difficulty_ci95": results["by_difficulty_ci95"], "truncated": results["truncated_responses"],
            "mean_response_tokens": results["mean_response_tokens"], "step_accuracy": step_accuracy(responses),
            "style_shares": style_shares(responses),
            "opens_in_style": {k: v / len(responses) for k, v in opened.items()}}


def half_trace_prompt(tokenizer, record) -> tuple[str, str]:
    """(rendered prompt with the first half of the teacher trace, the half given), cut at a sentence boundary:
    the sentences whose tokens fit in half of the CoT's tokens."""
    lines = record.cot.split("\n")
    total = len(tokenizer(record.cot, add_special_tokens=False).input_ids)
    kept, used = [], 0
    for line in lines:
        used += len(tokenizer(line + "\n", add_special_tokens=False).input_ids)
        if used > total / 2:
            break
        kept.append(line)
    given = "\n".join(kept)
    return render_prompt(tokenizer, record.prompt) + "<think>\n" + given + "\n", given


def continuation(model, tokenizer, n: int, max_new_tokens: int, progress: bool) -> dict:
    """The original student continues the first half of teacher traces of the test split (greedy)."""
    records = world_records("test", "teacher", n)
    prompts = [half_trace_prompt(tokenizer, r)[0] for r in records]
    gens, _ = generate_hf(model, tokenizer, prompts, GenerationConfig(max_new_tokens=max_new_tokens),
                          progress=progress)
    finished, correct = [], []
    for g in gens:
        record = records[g.prompt_index]
        closed = "</think>" in g.text and not g.hit_max_tokens
        extraction = extract_answer(g.text.split("</think>")[-1], flexible=False) if closed else None
        finished.append(bool(closed and extraction.answer is not None))
        correct.append(bool(closed and answers_match(record.metadata["gold"], extraction.answer)))
    continued = [g.text.split("</think>")[0] for g in gens]
    return {"n": len(gens), "finished": sum(finished) / len(gens), "finished_ci95": ci95(finished),
            "correct": sum(correct) / len(gens), "hit_max_tokens": sum(g.hit_max_tokens for g in gens) / len(gens),
            "style_shares": style_shares(continued), "step_accuracy": step_accuracy(continued)}


def measure_world(out: Path, spec, *, progress: bool = True) -> dict:
    from cotdistill.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(out / "tokenizer"))
    teacher, student = (load_model(str(out / name)) for name in ("teacher", "student"))
    props = {"teacher": accuracy_with_styles(teacher, tokenizer, spec.eval_records, spec.max_new_tokens, progress),
             "student": accuracy_with_styles(student, tokenizer, spec.eval_records, spec.max_new_tokens, progress),
             "continuation": continuation(student, tokenizer, spec.continuation_records, spec.max_new_tokens,
                                          progress)}
    props["habit"] = {"opens_in_student_style": props["student"]["opens_in_style"].get("student", 0.0),
                      "student_sentence_share": props["student"]["style_shares"]["student"],
                      "teacher_sentence_share": props["student"]["style_shares"]["teacher"]}
    props["proportions"] = proportions(tokenizer)
    return props


def proportions(tokenizer, n: int = 500) -> dict:
    """P / CoT / A token shares of each chat style on the train split (the truncation protocol's arithmetic
    depends on them: with P a quarter of a sequence, LSP 0.5 supervises only a third of the CoT)."""
    from cotdistill.data.encode import ANSWER, COT, PROMPT, EncodeConfig, encode_record

    out = {}
    for style in ("teacher", "student"):
        counts = Counter()
        for i, record in enumerate(world_records("train", style, n)):
            example = encode_record(tokenizer, record, EncodeConfig(sections="promptcotAns"), i)
            counts.update(example.segments)
        total = sum(counts.values())
        out[style] = {"prompt": counts[PROMPT] / total, "cot": counts[COT] / total, "answer": counts[ANSWER] / total,
                      "mean_tokens": total / n, "cot_to_prompt": counts[COT] / max(counts[PROMPT], 1)}
    return out
