"""The embedded default: a synthetic reasoning world, its tokenizer and tiny pretrained teacher and student."""

from __future__ import annotations

from cotdistill.data.records import ReasoningRecord
from cotdistill.world.generator import generate_split, render, style_of

DEFAULT_SIZES = {"train": 4000, "validation": 200, "test": 300}
WORLD_SEED = 0
# room for the longest teacher answer of the test split (523 tokens; 512 cut 4 of 300 correct teacher answers)
WORLD_MAX_NEW_TOKENS = 576


def world_records(split: str, style: str = "teacher", n: int | None = None, seed: int = WORLD_SEED,
                  min_steps: int = 2, max_steps: int = 6) -> list[ReasoningRecord]:
    """The world's problems for a split as records, written in one style; metadata has uid, difficulty, gold."""
    problems = generate_split(split, n or DEFAULT_SIZES[split], seed=seed, min_steps=min_steps, max_steps=max_steps)
    out = []
    for problem in problems:
        rec = render(problem, style)
        meta = {"uid": problem.uid, "difficulty": problem.difficulty, "gold": rec.gold, "style": style,
                "sentence_styles": [tag for _, tag in rec.sentences]}
        out.append(ReasoningRecord(rec.prompt, rec.cot, rec.answer_text, meta))
    return out


def parse_world_spec(spec: str) -> tuple[str, str, int | None]:
    """``world:train`` / ``world:train:student`` / ``world:test:teacher:100`` → (split, style, n)."""
    parts = spec.split(":")[1:]
    if not parts or parts[0] not in DEFAULT_SIZES or len(parts) > 3:
        raise ValueError(f"world data spec must be world:SPLIT[:STYLE[:N]] with SPLIT in {sorted(DEFAULT_SIZES)}, "
                         f"got {spec!r}")
    style = parts[1] if len(parts) > 1 else "teacher"
    n = int(parts[2]) if len(parts) > 2 else None
    return parts[0], style, n


__all__ = ["DEFAULT_SIZES", "WORLD_MAX_NEW_TOKENS", "parse_world_spec", "style_of", "world_records"]
