"""Split a response into actions (sentences by default), each with its character span.

Sentence rule, written for model output in math (MATH / GSM8K style solutions, ``<think>`` traces):

* a newline ends an action, except inside display math (``$$…$$``, ``\\[…\\]``) or a fenced code block, which
  stay whole;
* inside a line an action ends after ``.``, ``?`` or ``!`` (and any closing quotes, brackets or ``**`` right after
  it) followed by whitespace or the end of the text — unless the mark is inside braces (``\\boxed{3.5}``) or math,
  is a decimal point, ends a known abbreviation (``e.g.``, ``i.e.``, ``Fig.``, …), is an enumeration marker at the
  start of a line (``1.``, ``a.``), or is an ellipsis followed by a lower-case word;
* ``$`` opens inline math only as TeX readers (pandoc) decide: a non-space right after it and a closing ``$``
  later on the line with a non-space before it and no digit after it; otherwise it is a currency sign
  ("It costs $5. Then he pays $3." is two sentences).

Spans exclude surrounding whitespace, so ``text[start:end]`` is the action itself. Other units: ``line`` (one
action per non-empty line) and ``step`` (blank-line separated paragraphs).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Literal

ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "al.", "dr.", "mr.", "mrs.", "ms.", "prof.", "fig.", "figs.",
                 "eq.", "eqs.", "approx.", "resp.")
Unit = Literal["sentence", "line", "step"]
UNITS = typing.get_args(Unit)
CLOSERS = "\"')]*”’"  # may follow a sentence mark before the space: He said "stop." (see above.) **Step 1.**
ENUMERATION = re.compile(r"(?:\d{1,3}|[A-Za-z]|[ivxIVX]{1,4})\.")


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


def _closing_dollar(text: str, i: int) -> int | None:
    """The ``$`` that closes inline math opened at ``i``, or ``None`` if the ``$`` at ``i`` is a currency sign."""
    if i + 1 >= len(text) or text[i + 1].isspace():
        return None
    line_end = text.find("\n", i)
    line_end = len(text) if line_end < 0 else line_end
    j = text.find("$", i + 1, line_end)
    while j >= 0:
        after = text[j + 1] if j + 1 < len(text) else " "
        if not text[j - 1].isspace() and text[j - 1] != "\\" and not after.isdigit():
            return j
        j = text.find("$", j + 1, line_end)
    return None


def _protected_end(text: str, i: int) -> int | None:
    """If a region that is never split starts at ``i`` (display math, a code fence, inline math), its end."""
    for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if text.startswith(opener, i):
            j = text.find(closer, i + len(opener))
            return len(text) if j < 0 else j + len(closer)
    if text.startswith("```", i) and (i == 0 or text[i - 1] == "\n"):
        j = text.find("\n```", i + 3)
        if j < 0:
            return len(text)
        line_end = text.find("\n", j + 4)
        return len(text) if line_end < 0 else line_end
    if text[i] == "$":
        j = _closing_dollar(text, i)
        return None if j is None else j + 1
    return None


def _is_sentence_end(text: str, i: int) -> int | None:
    """For a ``.?!`` at ``i`` (outside math and braces): the offset just past the sentence, or ``None``."""
    c, n = text[i], len(text)
    end = i + 1
    while end < n and text[end] in ".?!":  # "?!", "..."
        end += 1
    mark_end = end
    while end < n and text[end] in CLOSERS:
        end += 1
    if end < n and not text[end].isspace():
        return None  # also every decimal point (3.5): a digit follows it; "3." before a space ends a sentence
    word = re.search(r"(\S+)$", text[:mark_end])
    token = word.group(1) if word else ""
    if token.lower().lstrip("(\"'") in ABBREVIATIONS:
        return None
    before = text[text.rfind("\n", 0, i) + 1:mark_end - len(token)].rstrip().lstrip("*#>- ")
    after_sentence = bool(before) and before[-1] in ".?!" and before.split()[-1].lower() not in ABBREVIATIONS
    if c == "." and ENUMERATION.fullmatch(token.lstrip("*")) and (not before or after_sentence):
        return None  # "1. First we…" at the start of a line or after a sentence is a list marker
    if mark_end - i >= 2 and text[i:mark_end].startswith("..."):
        nxt = re.match(r"\s*(\S)", text[end:])
        if nxt and nxt.group(1).islower():
            return None  # "Wait... maybe" goes on
    return end


def _sentence_ends(text: str) -> list[int]:
    """Character offsets just past each sentence end."""
    ends, depth, i = [], 0, 0
    while i < len(text):
        c = text[i]
        if text.startswith("\\$", i):  # an escaped dollar is a literal sign, never math
            i += 2
            continue
        protected = _protected_end(text, i) if c in "$\\`" else None
        if protected is not None:
            i = protected
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif c == "\n":
            ends.append(i)
            depth = 0
        elif c in ".?!" and depth == 0:
            end = _is_sentence_end(text, i)
            if end is not None:
                ends.append(end)
                i = end
                continue
            while i + 1 < len(text) and text[i + 1] in ".?!":
                i += 1
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
