"""Answer extraction: small pure functions, strict and flexible ones named as such.

* strict: the last ``\\boxed{…}`` (nested braces kept), GSM8K's ``#### n``, "the answer is …";
* flexible: the last number in the text (used only when no strict pattern matches, and reported as such).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Extraction:
    answer: str | None
    method: str  # boxed | gsm8k | answer_is | last_number | none


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` or ``\\fbox{…}``, with nested braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i].strip()
        i += 1
    return None  # unbalanced: the response was cut off inside the box


def extract_gsm8k(text: str) -> str | None:
    """``#### 1,234`` → ``1234`` (the last such line)."""
    found = re.findall(r"####\s*([^\n]+)", text)
    if not found:
        return None
    return found[-1].strip().replace(",", "").rstrip(".").strip() or None


def extract_answer_is(text: str) -> str | None:
    """The text after the last "the answer is", up to the end of its sentence or line."""
    found = re.findall(r"answer is[:\s]*(.+?)(?:\.\s|\.$|\n|$)", text, flags=re.IGNORECASE)
    if not found:
        return None
    answer = found[-1].strip().strip("$").strip()
    return answer or None


def extract_last_number(text: str) -> str | None:
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return found[-1].replace(",", "") if found else None


def extract_answer(text: str, *, flexible: bool = True) -> Extraction:
    """The strict patterns in order (boxed, ####, answer is); then, if ``flexible``, the last number."""
    for method, fn in (("boxed", extract_boxed), ("gsm8k", extract_gsm8k), ("answer_is", extract_answer_is)):
        answer = fn(text)
        if answer is not None:
            return Extraction(answer, method)
    if flexible:
        answer = extract_last_number(text)
        if answer is not None:
            return Extraction(answer, "last_number")
    return Extraction(None, "none")
