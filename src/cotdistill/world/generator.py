"""A seeded generator of multi-step arithmetic word problems with two reasoning styles of known origin.

Every problem is a starting quantity followed by 2..6 changes (buy, give away, boxes of k, multiply). The same
problem can be written out in the *teacher* style (restate, compute in words, verify) or the *student* style
(terse equations). Each CoT sentence carries a style tag — ``teacher``, ``student`` or ``shared`` — so that
provenance tracing can later be scored against ground truth. Generated text from a model carries no tags, so
:func:`style_of` recovers a sentence's style from its template alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

NAMES = ["Tom", "Ana", "Ben", "Mia", "Leo", "Zoe", "Sam", "Eva", "Max", "Ivy", "Noah", "Lily"]
ITEMS = ["apples", "pens", "stamps", "coins", "books", "cards", "shells", "beads", "rocks", "cups", "eggs", "toys"]
MAX_VALUE = 999
SPLITS = {"train": 1000, "validation": 2000, "test": 3000}  # split -> seed offset; test is fixed by design
STYLES = ("teacher", "student")


@dataclass(frozen=True)
class Step:
    """One change to the running quantity. ``kind`` is add, sub, boxes or mul."""

    kind: str
    a: int  # amount added/removed, number of boxes, or multiplier
    b: int = 0  # items per box (boxes only)


@dataclass
class Problem:
    uid: str
    name: str
    item: str
    start: int
    steps: list[Step]
    difficulty: int = field(init=False)

    def __post_init__(self) -> None:
        self.difficulty = len(self.steps)

    @property
    def values(self) -> list[int]:
        """The running quantity before the first step and after every step."""
        out = [self.start]
        for step in self.steps:
            out.append(apply_step(out[-1], step))
        return out

    @property
    def answer(self) -> int:
        return self.values[-1]

    def question(self) -> str:
        parts = [f"{self.name} has {self.start} {self.item}."]
        for step in self.steps:
            parts.append(_describe(step, self.name, self.item))
        parts.append(f"How many {self.item} does {self.name} have now?")
        return " ".join(parts)


def apply_step(value: int, step: Step) -> int:
    if step.kind == "add":
        return value + step.a
    if step.kind == "sub":
        return value - step.a
    if step.kind == "boxes":
        return value + step.a * step.b
    if step.kind == "mul":
        return value * step.a
    raise ValueError(f"unknown step kind {step.kind!r}")


def _describe(step: Step, name: str, item: str) -> str:
    if step.kind == "add":
        return f"Then {name} buys {step.a} more {item}."
    if step.kind == "sub":
        return f"Then {name} gives away {step.a} {item}."
    if step.kind == "boxes":
        return f"Then {name} gets {step.a} boxes with {step.b} {item} in each box."
    return f"Then the number of {item} becomes {step.a} times as many."


def _random_step(rng: random.Random, value: int) -> Step:
    kinds = ["add", "sub", "boxes"]
    if value * 2 <= 200:
        kinds.append("mul")
    if value < 2:
        kinds.remove("sub")
    kind = rng.choice(kinds)
    if kind == "add":
        return Step("add", rng.randint(1, 30))
    if kind == "sub":
        return Step("sub", rng.randint(1, min(value - 1, 40)))
    if kind == "boxes":
        return Step("boxes", rng.randint(2, 6), rng.randint(2, 9))
    return Step("mul", rng.choice([2, 3]) if value * 3 <= 200 else 2)


def make_problem(rng: random.Random, difficulty: int, uid: str) -> Problem:
    """A problem with exactly ``difficulty`` steps whose running value stays in [1, MAX_VALUE]."""
    while True:
        start = rng.randint(2, 40)
        value, steps = start, []
        for _ in range(difficulty):
            step = _random_step(rng, value)
            value = apply_step(value, step)
            steps.append(step)
        if 1 <= value <= MAX_VALUE:
            return Problem(uid, rng.choice(NAMES), rng.choice(ITEMS), start, steps)


# --- the two styles -------------------------------------------------------------------------------------------
# Each function returns [(sentence, tag)] for one step. The shared sentence ("Now X has N items.") appears in
# both styles so that some actions are genuinely pre-existing in both models.


def _teacher_step(step: Step, before: int, after: int, name: str, item: str) -> list[tuple[str, str]]:
    if step.kind == "add":
        out = [(f"Buying {step.a} more gives {before} + {step.a} = {after}.", "teacher"),
               (f"Check: {after} - {step.a} = {before}.", "teacher")]
    elif step.kind == "sub":
        out = [(f"Giving away {step.a} leaves {before} - {step.a} = {after}.", "teacher"),
               (f"Check: {after} + {step.a} = {before}.", "teacher")]
    elif step.kind == "boxes":
        added = step.a * step.b
        out = [(f"The boxes hold {step.a} * {step.b} = {added} {item}.", "teacher"),
               (f"So the total is {before} + {added} = {after}.", "teacher")]
    else:
        out = [(f"Multiplying by {step.a} gives {before} * {step.a} = {after}.", "teacher"),
               (f"Check: {after} / {step.a} = {before}.", "teacher")]
    return out + [(f"Now {name} has {after} {item}.", "shared")]


def _student_step(step: Step, before: int, after: int, name: str, item: str) -> list[tuple[str, str]]:
    if step.kind == "add":
        eq = f"{before} + {step.a} = {after}."
    elif step.kind == "sub":
        eq = f"{before} - {step.a} = {after}."
    elif step.kind == "boxes":
        eq = f"{before} + {step.a} * {step.b} = {after}."
    else:
        eq = f"{before} * {step.a} = {after}."
    return [(eq, "student"), (f"Now {name} has {after} {item}.", "shared")]


@dataclass
class WorldRecord:
    """A problem rendered in one style: prompt, CoT sentences with tags, and the answer text."""

    problem: Problem
    style: str
    sentences: list[tuple[str, str]]

    @property
    def prompt(self) -> str:
        return self.problem.question()

    @property
    def cot(self) -> str:
        return "\n".join(s for s, _ in self.sentences)

    @property
    def answer_text(self) -> str:
        return f"The answer is \\boxed{{{self.problem.answer}}}."

    @property
    def gold(self) -> str:
        return str(self.problem.answer)


def render(problem: Problem, style: str) -> WorldRecord:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    values = problem.values
    if style == "teacher":
        sentences = [(f"{problem.name} starts with {problem.start} {problem.item}.", "teacher")]
    else:
        sentences = [(f"Start: {problem.start}.", "student")]
    step_fn = _teacher_step if style == "teacher" else _student_step
    for i, step in enumerate(problem.steps):
        sentences += step_fn(step, values[i], values[i + 1], problem.name, problem.item)
    sentences.append((f"The answer is {problem.answer}.", "shared"))
    return WorldRecord(problem, style, sentences)


def generate_split(split: str, n: int, *, seed: int = 0, min_steps: int = 2, max_steps: int = 6) -> list[Problem]:
    """``n`` problems for a split, difficulty cycling evenly over [min_steps, max_steps]; deterministic in seed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    rng = random.Random(seed * 100_003 + SPLITS[split])
    levels = list(range(min_steps, max_steps + 1))
    return [make_problem(rng, levels[i % len(levels)], f"{split}-{i}") for i in range(n)]


# --- recovering the style of generated text --------------------------------------------------------------------
_NUM = r"\d+"
_TEACHER_PATTERNS = [
    rf"\w+ starts with {_NUM} \w+\.",
    rf"Buying {_NUM} more gives {_NUM} \+ {_NUM} = {_NUM}\.",
    rf"Giving away {_NUM} leaves {_NUM} - {_NUM} = {_NUM}\.",
    rf"The boxes hold {_NUM} \* {_NUM} = {_NUM} \w+\.",
    rf"So the total is {_NUM} \+ {_NUM} = {_NUM}\.",
    rf"Multiplying by {_NUM} gives {_NUM} \* {_NUM} = {_NUM}\.",
    rf"Check: {_NUM} [-+/] {_NUM} = {_NUM}\.",
]
_STUDENT_PATTERNS = [
    rf"Start: {_NUM}\.",
    rf"{_NUM} [-+*] {_NUM}( \* {_NUM})? = {_NUM}\.",
]
_SHARED_PATTERNS = [
    rf"Now \w+ has {_NUM} \w+\.",
    rf"The answer is {_NUM}\.",
    rf"The answer is \\boxed\{{{_NUM}\}}\.",
    r"</?think>",
]


def style_of(sentence: str) -> str:
    """The style tag a sentence's template belongs to: teacher, student, shared, or unknown."""
    text = sentence.strip()
    for tag, patterns in (("teacher", _TEACHER_PATTERNS), ("student", _STUDENT_PATTERNS), ("shared", _SHARED_PATTERNS)):
        if any(re.fullmatch(p, text) for p in patterns):
            return tag
    return "unknown"
