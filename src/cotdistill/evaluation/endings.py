"""How a response ends: whether a model that was trained on cut traces still closes its thought and answers.

Each response gets one class, tested in this order:

* ``at_limit``: it ran to ``max_new_tokens`` (what a student trained on prefixes alone mostly does);
* ``think_then_boxed``: it closes ``</think>`` and gives ``\\boxed{…}`` after it (the teacher's form);
* ``think_then_other``: it closes ``</think>`` and answers some other way, or not at all;
* ``boxed_only``: ``\\boxed{…}`` with no ``</think>`` before it;
* ``own_words``: ``#### N``, "the answer is", "final answer" — the habits a pretrained model brings;
* ``none``: it stopped without any of these.

``thought_cut`` counts the responses that close their thought mid-sentence (the text before ``</think>`` does not
end with a sentence's punctuation): a student trained on a cut thought followed by the whole answer learns to cut.

:func:`gold_stated_counts` asks what grading cannot: whether a response that never gives an answer still *states*
the right number somewhere ("Now Leo has 49 coins." in a thought that runs to the limit): did the student reach the
answer and fail to end, or never reach it? A looping response writes many numbers, so the same count with another
problem's gold says how much of it chance explains.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

from cotdistill.data.records import THINK_CLOSE

ENDINGS = ("at_limit", "think_then_boxed", "think_then_other", "boxed_only", "own_words", "none")
_OWN_WORDS = re.compile(r"####|the answer is|final answer", re.IGNORECASE)


def ending_of(response: str, hit_max_tokens: bool) -> str:
    if hit_max_tokens:
        return "at_limit"
    if THINK_CLOSE in response:
        after = response.split(THINK_CLOSE, 1)[1]
        return "think_then_boxed" if "\\boxed{" in after else "think_then_other"
    if "\\boxed{" in response:
        return "boxed_only"
    return "own_words" if _OWN_WORDS.search(response) else "none"


def thought_cut(response: str) -> bool:
    """Whether the thought is closed in the middle of a sentence."""
    if THINK_CLOSE not in response:
        return False
    thought = response.split(THINK_CLOSE, 1)[0].rstrip()
    return bool(thought) and thought[-1] not in ".!?:)]}>\"'"


def ending_counts(samples: list[tuple[str, bool]]) -> dict[str, int]:
    """``{class: count}`` over ``(response, hit_max_tokens)`` pairs, every class present, plus ``thought_cut``."""
    counts = Counter(ending_of(text, hit) for text, hit in samples)
    return {**{name: counts[name] for name in ENDINGS},
            "thought_cut": sum(thought_cut(text) for text, hit in samples if not hit)}


# a number as text writes it: a sign only where it is not a minus between two terms (5-3), thousands grouped by
# threes (1,000; a list 1,2,3 is three numbers), an optional decimal part ($49.00 is 49)
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_IN_TEXT = re.compile(rf"(?<![\w.])-?{_DIGITS}(?!\w)")
_GOLD_NUMBER = re.compile(rf"-?{_DIGITS}")


def numbers_in(text: str) -> set[Decimal]:
    """The numbers ``text`` states, by value: "has 49 coins", "= 49.", "$49.00" and "1,000" give 49, 49, 49 and
    1000; 149, 490, 4,900 and 49.5 are numbers of their own, not 49 or 900."""
    return {Decimal(m.group().replace(",", "")) for m in _NUMBER_IN_TEXT.finditer(text)}


def gold_number(gold: str) -> Decimal | None:
    """A gold answer that is a plain number ("49", "-3", "49.0", "1,000"), by value; None for LaTeX, fractions,
    words."""
    text = str(gold).strip()
    return Decimal(text.replace(",", "")) if _GOLD_NUMBER.fullmatch(text) else None


def states_number(text: str, number: str) -> bool:
    """Whether ``text`` states the number ``number`` (see :func:`numbers_in`)."""
    value = gold_number(number)
    return value is not None and value in numbers_in(text)


def gold_stated_counts(samples: list[tuple[str, int]], golds: list[str]) -> dict[str, int]:
    """Over ``(response, problem index)`` pairs with numeric ``golds[index]``: ``gold_stated``, the responses that
    state their own problem's gold (of ``gold_checked``); ``gold_stated_by_chance``, those that state the *next*
    problem's gold where it is a different number (of ``chance_checked``): the rate chance alone gives. Golds that
    are not plain numbers (LaTeX, fractions) are left out of both."""
    numeric = [gold_number(g) for g in golds]
    counts = dict.fromkeys(("gold_checked", "gold_stated", "chance_checked", "gold_stated_by_chance"), 0)
    for text, index in samples:
        own, other = numeric[index], numeric[(index + 1) % len(numeric)]
        stated = numbers_in(text)
        if own is not None:
            counts["gold_checked"] += 1
            counts["gold_stated"] += own in stated
        if own is not None and other is not None and other != own:
            counts["chance_checked"] += 1
            counts["gold_stated_by_chance"] += other in stated
    return counts


def gold_stated_in_samples(path: str | Path) -> dict[str, int]:
    """:func:`gold_stated_counts` over an evaluation's ``samples.jsonl`` (one written before results.json counted
    it): each row's response, problem index and gold."""
    from cotdistill.data.formats import iter_rows  # a bad line is a DataError naming file and line

    rows = [row for _, row in iter_rows(str(path))]
    golds: dict[int, str] = {r["prompt_index"]: str(r["gold"]) for r in rows}
    order = sorted(golds)
    position = {index: i for i, index in enumerate(order)}
    return gold_stated_counts([(r["response"], position[r["prompt_index"]]) for r in rows], [golds[i] for i in order])
