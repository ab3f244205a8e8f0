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
"""

from __future__ import annotations

import re
from collections import Counter

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
