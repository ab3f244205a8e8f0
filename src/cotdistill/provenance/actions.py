"""Split a response into actions (sentences by default), each with its character span.

Sentence rule: a newline always ends an action; inside a line an action ends after ``.``, ``?`` or ``!`` that is
followed by whitespace or the end of the text, unless the mark is inside braces (``\\boxed{3.5}``) or inline
math (``$…$``, ``\\(…\\)``), is a decimal point (a digit on both sides), or ends a known abbreviation
(``e.g.``, ``i.e.``, ``etc.``, ``vs.``, ``Dr.``, ``Mr.``, ``Mrs.``, ``Fig.``). Spans exclude surrounding whitespace,
so ``text[start:end]`` is the action itself.

Other units: ``line`` (one action per non-empty line) and ``step`` (blank-line separated paragraphs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "dr.", "mr.", "mrs.", "fig.", "eq.", "approx.")
UNITS = ("sentence", "line", "step")


@dataclass(frozen=True)
class Action:
    text: str
    start: int
    end: int


def _trimmed(text: str, start: int, end: int) -> Action | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Action(text[start:end], start, end) if end > start else None


def _sentence_ends(text: str) -> list[int]:
    """Character offsets just past each sentence end."""
    ends, depth, math = [], 0, False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "()[]":
            math = text[i + 1] in "(["
            i += 2
            continue
        if c == "$":
            math = not math
        elif c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif c == "\n":
            ends.append(i)
            math, depth = False, 0
        elif c in ".?!" and depth == 0 and not math:
            followed = i + 1 == len(text) or text[i + 1].isspace()
            decimal = c == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            word = re.search(r"(\S+)$", text[:i + 1])
            abbreviation = word is not None and word.group(1).lower() in ABBREVIATIONS
            if followed and not decimal and not abbreviation:
                ends.append(i + 1)
        i += 1
    return ends


def split_actions(text: str, unit: str = "sentence") -> list[Action]:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "sentence":
        bounds = _sentence_ends(text) + [len(text)]
    elif unit == "line":
        bounds = [m.start() for m in re.finditer("\n", text)] + [len(text)]
    else:
        bounds = [m.start() for m in re.finditer(r"\n\s*\n", text)] + [len(text)]
    actions, start = [], 0
    for end in bounds:
        action = _trimmed(text, start, end)
        if action is not None:
            actions.append(action)
        start = end
    return actions
