"""Selection methods: one score per candidate, higher is kept; and the two selection modes.

Teacher-guided: ``teacher`` (absolute count of teacher actions — the paper's best variant), with the ablations
``teacher_share`` (relative share) and ``teacher_min`` (fewest teacher actions). Baselines: ``random`` (vanilla),
``grape`` (highest length-normalised student probability), ``longest``, ``shortest``, ``local_naturalness``
(student's mean per-sentence log-prob with only a short preceding window as context).
"""

from __future__ import annotations

import math
import random
import typing
from collections import defaultdict
from typing import Literal

from cotdistill.config import ConfigError
from cotdistill.select.scores import CandidateScore

Method = Literal["teacher", "teacher_share", "teacher_min", "random", "grape", "longest", "shortest",
                 "local_naturalness"]
METHODS = typing.get_args(Method)


def method_scores(method: str, scores: list[CandidateScore], seed: int = 0) -> list[float]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "random":
        rng = random.Random(seed)
        return [rng.random() for _ in scores]
    if method == "local_naturalness" and any(s.local_naturalness is None for s in scores):
        raise ValueError("local_naturalness needs scores computed with local_naturalness=True")
    pick = {
        "teacher": lambda s: s.teacher_actions,
        "teacher_share": lambda s: s.teacher_share,
        "teacher_min": lambda s: -s.teacher_actions,
        "grape": lambda s: s.student_logprob_mean,
        "longest": lambda s: s.student_tokens,
        "shortest": lambda s: -s.student_tokens,
        "local_naturalness": lambda s: s.local_naturalness,
    }[method]
    return [float(pick(s)) for s in scores]


def select_per_question(groups: list[str], values: list[float], seed: int = 0) -> list[int]:
    """For each question (group key), the index of its best candidate; ties broken at random (seeded)."""
    rng = random.Random(seed)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    chosen = []
    for members in by_group.values():
        best = max(values[i] for i in members)
        chosen.append(rng.choice([i for i in members if values[i] == best]))
    return sorted(chosen)


def check_keep(keep: float) -> None:
    """``keep`` is a share in (0, 1] or a whole count above 1 (1.5 kept 1 record: it is neither; nan kept none)."""
    if not (0 < keep <= 1 or (1 < keep < math.inf and float(keep).is_integer())):
        raise ConfigError(f"keep must be > 0 and, above 1, a whole count: a share in (0, 1] or a count such as 100; "
                          f"got {keep:g}")


def keep_count(total: int, keep: float) -> int:
    """``keep`` in (0, 1] is a fraction (rounded down, at least 1); ``keep`` > 1 is a count."""
    check_keep(keep)
    n = int(keep) if keep > 1 else max(1, int(keep * total))
    if n > total:
        raise ValueError(f"keep asks for {n} records but only {total} exist")
    return n


def select_per_dataset(values: list[float], keep: float, seed: int = 0) -> list[int]:
    """The top ``keep`` (fraction or count) by value; ties broken at random (seeded)."""
    rng = random.Random(seed)
    n = keep_count(len(values), keep)
    order = sorted(range(len(values)), key=lambda i: (-values[i], rng.random()))
    return sorted(order[:n])
