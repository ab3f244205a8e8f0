"""A seeded generator of multi-step arithmetic word problems with reasoning styles of known origin.

Every problem is a starting quantity followed by 2..6 changes (buy, give away, boxes of k, multiply). The same
problem can be written out in three styles:

* ``teacher``: verbose. It names the start, and for every change may restate it, *decompose* the arithmetic into
  easy parts (tens, then units), compute, and *check* the result backwards. The optional parts are drawn per
  trace (a :class:`Verbosity`), so two teacher traces of one problem differ in how much of this they carry —
  which is what several teacher samples of one question look like.
* ``student``: terse equations, a change per line (``14 + 4 * 6 = 38.``), which a small model gets wrong more
  often: no decomposition, no check.
* ``narrative``: plain past-tense prose; it exists only in the base corpus (what a pretrained model has read
  besides the two chat styles).

Each CoT sentence carries a style tag (``teacher``, ``student``, ``shared``, ``narrative``) so that provenance
tracing can be scored against ground truth; :func:`style_of` recovers the tag from the text alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

NAMES = ["Tom", "Ana", "Ben", "Mia", "Leo", "Zoe", "Sam", "Eva", "Max", "Ivy", "Noah", "Lily"]
ITEMS = ["apples", "pens", "stamps", "coins", "books", "cards", "shells", "beads", "rocks", "cups", "eggs", "toys"]
MAX_VALUE = 999
# split -> seed offset; test is fixed by design; "base" feeds only the base (pretraining) corpus
SPLITS = {"train": 1000, "validation": 2000, "test": 3000, "base": 4000}
STYLES = ("teacher", "student", "narrative")
MULTIPLIER_WORDS = {2: "double", 3: "triple"}


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

    def question(self, phrasing: int = 0) -> str:
        """The problem statement. Phrasing 0 is the one chat data and benchmarks use; the base corpus mixes all."""
        opener = [f"{self.name} has {self.start} {self.item}.",
                  f"At first {self.name} owns {self.start} {self.item}.",
                  f"{self.name} starts the day with {self.start} {self.item}."][phrasing]
        closer = [f"How many {self.item} does {self.name} have now?",
                  f"How many {self.item} does {self.name} own in the end?",
                  f"Find the number of {self.item} {self.name} has at the end."][phrasing]
        return " ".join([opener, *(describe(step, phrasing) for step in self.steps), closer])


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


def describe(step: Step, phrasing: int = 0) -> str:
    """One change as the question words it (short: the prompt stays a small share of a sequence)."""
    if step.kind == "add":
        return [f"Then buys {step.a} more.", f"Later gets {step.a} more.", f"Then finds {step.a} more."][phrasing]
    if step.kind == "sub":
        return [f"Then gives away {step.a}.", f"Later loses {step.a}.", f"Then sells {step.a}."][phrasing]
    if step.kind == "boxes":
        return [f"Then gets {step.a} boxes of {step.b}.", f"Later adds {step.a} packs of {step.b}.",
                f"Then receives {step.a} bags of {step.b}."][phrasing]
    word = MULTIPLIER_WORDS[step.a]
    return [f"Then the amount {word}s.", f"Later the count {word}s.", f"Then the number {word}s."][phrasing]


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


# --- the styles -----------------------------------------------------------------------------------------------
# Each step function returns [(sentence, tag)]. The shared sentence ("Now X has N items.") appears in teacher and
# student style alike, so that some actions are genuinely pre-existing in both models.


@dataclass(frozen=True)
class Verbosity:
    """How much optional content a teacher trace carries: the probability of each optional sentence."""

    plan: float = 1.0  # "There are 4 changes." after the start
    restate: float = 1.0  # "Step 2: gives away 13." before computing it
    decompose: float = 1.0  # "First 27 - 10 = 17, then 17 - 3 = 14." for a two-digit operand
    check: float = 1.0  # "Check: 14 + 13 = 27." after computing

    @classmethod
    def sample(cls, rng: random.Random) -> Verbosity:
        """A trace's own verbosity: each knob uniform in [0, 1], so traces range from bare to fully worked."""
        return cls(*(rng.random() for _ in range(4)))


def _split_tens(a: int) -> tuple[int, int] | None:
    """A two-digit operand as (tens, units), when both parts are non-zero (``27`` → ``(20, 7)``)."""
    if a < 10 or a % 10 == 0:
        return None
    return a - a % 10, a % 10


def _decomposition(before: int, op: str, a: int) -> str | None:
    parts = _split_tens(a)
    if parts is None:
        return None
    mid = before + parts[0] if op == "+" else before - parts[0]
    after = mid + parts[1] if op == "+" else mid - parts[1]
    return f"First {before} {op} {parts[0]} = {mid}, then {mid} {op} {parts[1]} = {after}."


def _mul_decomposition(before: int, k: int) -> str | None:
    parts = _split_tens(before)
    if parts is None:
        return None
    return (f"First {parts[0]} * {k} = {parts[0] * k}, then {parts[1]} * {k} = {parts[1] * k}, "
            f"and {parts[0] * k} + {parts[1] * k} = {before * k}.")


def _teacher_step(i: int, step: Step, before: int, after: int, problem: Problem, verbosity: Verbosity,
                  rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if rng.random() < verbosity.restate:
        out.append((f"Step {i + 1}: {describe(step)[5:]}", "teacher"))  # "Then buys 5 more." -> "buys 5 more."
    decompose = rng.random() < verbosity.decompose
    if step.kind in ("add", "sub"):
        op = "+" if step.kind == "add" else "-"
        parts = _decomposition(before, op, step.a) if decompose else None
        if parts:
            out.append((parts, "teacher"))
        verb = "Buying" if step.kind == "add" else "Giving away"
        result = "gives" if step.kind == "add" else "leaves"
        extra = " more" if step.kind == "add" else ""
        out.append((f"{verb} {step.a}{extra} {result} {before} {op} {step.a} = {after}.", "teacher"))
        check = f"Check: {after} {'-' if op == '+' else '+'} {step.a} = {before}."
    elif step.kind == "boxes":
        added = step.a * step.b
        out.append((f"The boxes hold {step.a} * {step.b} = {added} {problem.item}.", "teacher"))
        parts = _decomposition(before, "+", added) if decompose else None
        if parts:
            out.append((parts, "teacher"))
        out.append((f"So the total is {before} + {added} = {after}.", "teacher"))
        check = f"Check: {after} - {added} = {before}."
    else:
        parts = _mul_decomposition(before, step.a) if decompose else None
        if parts:
            out.append((parts, "teacher"))
        out.append((f"Multiplying by {step.a} gives {before} * {step.a} = {after}.", "teacher"))
        check = f"Check: {after} / {step.a} = {before}."
    if rng.random() < verbosity.check:
        out.append((check, "teacher"))
    return out + [(f"Now {problem.name} has {after} {problem.item}.", "shared")]


def _student_step(step: Step, before: int, after: int, problem: Problem) -> list[tuple[str, str]]:
    if step.kind == "add":
        eq = f"{before} + {step.a} = {after}."
    elif step.kind == "sub":
        eq = f"{before} - {step.a} = {after}."
    elif step.kind == "boxes":
        eq = f"{before} + {step.a} * {step.b} = {after}."
    else:
        eq = f"{before} * {step.a} = {after}."
    return [(eq, "student"), (f"Now {problem.name} has {after} {problem.item}.", "shared")]


def _narrative_step(step: Step, before: int, after: int, problem: Problem) -> list[tuple[str, str]]:
    change = {"add": f"adding {step.a}", "sub": f"taking away {step.a}",
              "boxes": f"adding {step.a} groups of {step.b}", "mul": f"multiplying by {step.a}"}[step.kind]
    return [(f"After {change}, the count went from {before} to {after}.", "narrative")]


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


def render(problem: Problem, style: str, rng: random.Random | None = None,
           verbosity: Verbosity | None = None) -> WorldRecord:
    """``problem`` written out in ``style``. Teacher traces draw their optional sentences from ``rng`` (seeded by
    the problem's uid when omitted, so a record is reproducible) with ``verbosity`` (drawn per trace if omitted)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    rng = rng or random.Random(f"render:{problem.uid}:{style}")
    values = problem.values
    if style == "teacher":
        verbosity = verbosity or Verbosity.sample(rng)
        sentences = [(f"{problem.name} starts with {problem.start} {problem.item}.", "teacher")]
        if rng.random() < verbosity.plan:
            sentences.append((f"There are {problem.difficulty} changes to follow.", "teacher"))
        for i, step in enumerate(problem.steps):
            sentences += _teacher_step(i, step, values[i], values[i + 1], problem, verbosity, rng)
    elif style == "student":
        sentences = [(f"Start: {problem.start}.", "student")]
        for i, step in enumerate(problem.steps):
            sentences += _student_step(step, values[i], values[i + 1], problem)
    else:
        sentences = [(f"In the beginning there were {problem.start} {problem.item}.", "narrative")]
        for i, step in enumerate(problem.steps):
            sentences += _narrative_step(step, values[i], values[i + 1], problem)
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
_STEP_TEXT = (r"(buys \d+ more|gives away \d+|gets \d+ boxes of \d+|the amount (doubles|triples))\.")
_TEACHER_PATTERNS = [
    rf"\w+ starts with {_NUM} \w+\.",
    rf"There are {_NUM} changes to follow\.",
    rf"Step {_NUM}: {_STEP_TEXT}",
    rf"First {_NUM} [-+] {_NUM} = {_NUM}, then {_NUM} [-+] {_NUM} = {_NUM}\.",
    rf"First {_NUM} \* {_NUM} = {_NUM}, then {_NUM} \* {_NUM} = {_NUM}, and {_NUM} \+ {_NUM} = {_NUM}\.",
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
_NARRATIVE_PATTERNS = [
    rf"In the beginning there were {_NUM} \w+\.",
    rf"After [a-z ]+{_NUM}( groups of {_NUM})?, the count went from {_NUM} to {_NUM}\.",
]
# teacher sentences that only the optional knobs produce: their count measures a trace's verbosity
OPTIONAL_TEACHER = re.compile(rf"^(There are {_NUM} changes|Step {_NUM}:|First {_NUM}|Check:)")


def style_of(sentence: str) -> str:
    """The style tag a sentence's template belongs to: teacher, student, shared, narrative, or unknown."""
    text = sentence.strip()
    for tag, patterns in (("teacher", _TEACHER_PATTERNS), ("student", _STUDENT_PATTERNS),
                          ("shared", _SHARED_PATTERNS), ("narrative", _NARRATIVE_PATTERNS)):
        if any(re.fullmatch(p, text) for p in patterns):
            return tag
    return "unknown"
