"""The base corpus: what the world's original student reads before it ever sees a chat turn.

A real student is a pretrained LLM: it has read reasoning of every kind, can continue any trace and knows how one
ends; chat tuning gives it habits, not knowledge. The miniature does the same in two phases. This module writes the
first phase's documents — plain text, no chat template — from the ``base`` split's own seeds (never the test
split): problems in several phrasings, worked in the teacher, student and narrative styles, in two document
formats (one with ``<think>`` markers, as reasoning data in pretraining sets has), plus arithmetic drills.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from cotdistill.world.generator import generate_split, render

STYLE_WEIGHTS = {"teacher": 0.5, "student": 0.3, "narrative": 0.2}
DRILL_SHARE = 0.15  # share of documents that are arithmetic drills rather than worked problems


def worked_document(problem, rng: random.Random) -> str:
    style = rng.choices(list(STYLE_WEIGHTS), weights=list(STYLE_WEIGHTS.values()))[0]
    record = render(problem, style, rng)
    question = problem.question(rng.randrange(3))
    if rng.random() < 0.5:  # reasoning-data format, as the chat turn will have it
        return f"{question}\n<think>\n{record.cot}\n</think>\n\n{record.answer_text}"
    steps = " ".join(s for s, _ in record.sentences)
    return f"Question: {question}\nSolution: {steps}\nAnswer: {problem.answer}"


def drill_document(rng: random.Random, lines: int = 12) -> str:
    """Single operations of the sizes the world's steps need, as a textbook's exercise list would have them."""
    out = []
    for _ in range(lines):
        kind = rng.choice(["+", "-", "*", "box"])
        a = rng.randint(2, 400)
        if kind == "+":
            b = rng.randint(1, 60)
            out.append(f"{a} + {b} = {a + b}.")
        elif kind == "-":
            b = rng.randint(1, min(a - 1, 60))
            out.append(f"{a} - {b} = {a - b}.")
        elif kind == "*":
            a, k = rng.randint(2, 200), rng.choice([2, 3])
            out.append(f"{a} * {k} = {a * k}.")
        else:
            x, y = rng.randint(2, 9), rng.randint(2, 9)
            out.append(f"{x} * {y} = {x * y}.")
    return "\n".join(out)


def base_documents(n: int, *, seed: int = 0) -> Iterator[str]:
    """``n`` base-corpus documents, deterministic in ``seed``."""
    rng = random.Random(f"base-corpus:{seed}")
    problems = generate_split("base", n, seed=seed)
    for problem in problems:
        yield drill_document(rng) if rng.random() < DRILL_SHARE else worked_document(problem, rng)
