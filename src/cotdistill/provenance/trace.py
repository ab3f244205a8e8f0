"""Provenance of generated actions: given each action's scores under teacher, student and distilled student,
classify it and summarise the category mix overall, per benchmark, for correct vs wrong responses and by position.

The stage that loads the models, scores and writes the report is ``cotdistill.stages.trace``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from cotdistill.config import AT_LEAST_ONE, check_field_rules
from cotdistill.provenance.actions import Action, Unit
from cotdistill.provenance.classify import CATEGORIES, DEFAULT_ALPHA, DEFAULT_MARGIN, classify
from cotdistill.provenance.scoring import Context

MODEL_ROLES = ("teacher", "student", "distilled")
POSITION_BINS = 10


@dataclass
class TraceConfig:
    samples: str = ""  # samples.jsonl from `cotdistill eval` (a prompt and a response per line)
    teacher: str = ""  # path, hub id or world:teacher
    student: str = ""  # the original student
    distilled: str = ""  # the distilled student that wrote the samples
    out: str = "runs/trace"
    unit: Unit = "sentence"
    alpha: float = DEFAULT_ALPHA  # all three probabilities within alpha: pre-existing, not enhanced
    margin: float = DEFAULT_MARGIN  # the paper's β: p_T − p_S beyond it is teacher-, below −β student-originated
    batch_size: int = 8
    limit: int | None = field(default=None, metadata={"help": "the first N samples", "range": AT_LEAST_ONE})
    device: str = "auto"
    context: Context = "own_template"  # shared_text: the distilled model's template for all three
    world_styles: bool = False  # compare with the embedded world's known sentence styles
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {"beta": "margin"}

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= self.margin:
            raise ValueError(f"need 0 <= alpha <= margin, got alpha {self.alpha}, margin {self.margin}")
        check_field_rules(self)


def load_samples(path: str | Path, limit: int | None = None) -> list[dict]:
    """The ``samples.jsonl`` of ``cotdistill eval``: one object per line with a ``prompt`` and a ``response``."""
    from cotdistill.data.formats import iter_rows
    from cotdistill.data.records import DataError

    rows = []
    for line, row in iter_rows(str(path)):
        for name in ("prompt", "response"):
            if not isinstance(row.get(name), str):
                raise DataError(str(path), line, f"a string field {name!r} (samples.jsonl from `cotdistill eval`)",
                                f"keys {sorted(row)}" if name not in row else f"{type(row[name]).__name__}")
        _check_outcome_fields(row, str(path), line)
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise DataError(str(path), None, "at least one sample", "no rows")
    return rows


def _check_outcome_fields(row: dict, source: str, line: int) -> None:
    """``correct`` and ``bench`` group the actions: ``bool("false")`` is True (a string "false" counted as a right
    answer) and a list ``bench`` failed as a dict key after every model had scored. Either may be absent."""
    from cotdistill.data.records import DataError

    correct = row.get("correct", False)
    if not (isinstance(correct, (int, float)) and correct in (0, 1)):  # bool is an int: True == 1
        raise DataError(source, line, "correct as true/false (or 1/0)", repr(correct))
    if not isinstance(row.get("bench", ""), str):
        raise DataError(source, line, "bench as a string", type(row["bench"]).__name__)


def _prob(n_tokens: float, logprob_sum: float) -> float:
    import math

    return math.exp(logprob_sum / n_tokens) if n_tokens else float("nan")


def build_action_rows(samples: list[dict], actions: list[list[Action]], scores: dict[str, dict],
                      config: TraceConfig, style_fn=None) -> list[dict]:
    rows = []
    for i, sample in enumerate(samples):
        n = len(actions[i])
        for k, action in enumerate(actions[i]):
            probs = {role: _prob(*scores[role][i][k]) for role in MODEL_ROLES}
            if any(p != p for p in probs.values()):  # an action with no token of its own (NaN): nothing to score
                continue
            row = {"sample": i, "bench": sample.get("bench", "custom"), "correct": bool(sample.get("correct")),
                   "position": k, "relative_position": k / max(n - 1, 1), "text": action.text,
                   "span": [action.start, action.end], "p_teacher": probs["teacher"], "p_student": probs["student"],
                   "p_distilled": probs["distilled"],
                   "category": classify(probs["teacher"], probs["student"], probs["distilled"], alpha=config.alpha,
                                        margin=config.margin)}
            if style_fn is not None:
                row["true_style"] = style_fn(action.text)
            rows.append(row)
    return rows


def _shares(rows: list[dict]) -> dict[str, float]:
    counts = Counter(r["category"] for r in rows)
    total = max(len(rows), 1)
    return {c: counts[c] / total for c in CATEGORIES}


def position_curves(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per outcome (correct / wrong) and category, the category's share in each relative-position bin."""
    curves: dict[str, dict[str, list[float]]] = {}
    for outcome, flag in (("correct", True), ("wrong", False)):
        bins: list[list[dict]] = [[] for _ in range(POSITION_BINS)]
        for r in rows:
            if r["correct"] == flag:
                bins[min(POSITION_BINS - 1, int(r["relative_position"] * POSITION_BINS))].append(r)
        curves[outcome] = {c: [_shares(b)[c] if b else float("nan") for b in bins] for c in CATEGORIES}
    return curves


def curve_areas(curves: dict) -> dict[str, float]:
    """Area between the correct and wrong curves of each category (mean absolute gap over positions)."""
    out = {}
    for c in CATEGORIES:
        gaps = [abs(a - b) for a, b in zip(curves["correct"][c], curves["wrong"][c]) if a == a and b == b]
        out[c] = sum(gaps) / len(gaps) if gaps else float("nan")
    return out


def confusion(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Ground-truth style (rows) × category (columns), for rows whose style is known."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: {c: 0 for c in CATEGORIES})
    for r in rows:
        if r.get("true_style") not in (None, "unknown"):
            table[r["true_style"]][r["category"]] += 1
    return dict(table)


AGREEING = {"teacher": ("teacher",), "student": ("student",), "shared": ("shared", "boosted")}


def agreement_per_style(table: dict[str, dict[str, int]]) -> dict[str, float]:
    """Per known style, the share of its actions that land in the matching category."""
    return {style: sum(table[style][c] for c in AGREEING[style]) / max(sum(table[style].values()), 1)
            for style in AGREEING if style in table}


def provenance_agreement(table: dict[str, dict[str, int]]) -> float:
    """Share of known-style actions whose category matches the style (teacher→teacher, student→student,
    shared→shared or boosted: text both styles write is pre-existing in both)."""
    match = AGREEING
    total = sum(sum(v.values()) for v in table.values())
    hits = sum(table[style][c] for style in table for c in match.get(style, ()))
    return hits / total if total else float("nan")


def summarise(rows: list[dict], config: TraceConfig) -> dict:
    boosted = [r for r in rows if r["category"] == "boosted"]
    by_bench = defaultdict(list)
    for r in rows:
        by_bench[r["bench"]].append(r)
    curves = position_curves(rows)
    summary = {
        "actions": len(rows), "responses": len({r["sample"] for r in rows}), "alpha": config.alpha,
        "margin": config.margin, "unit": config.unit, "overall": _shares(rows),
        "per_bench": {b: _shares(v) for b, v in by_bench.items()},
        "correct": _shares([r for r in rows if r["correct"]]), "wrong": _shares([r for r in rows if not r["correct"]]),
        "boosted_raised_fraction": (sum(r["p_distilled"] > r["p_student"] for r in boosted) / len(boosted)
                                    if boosted else float("nan")),
        "position_curves": curves, "curve_area": curve_areas(curves),
    }
    if any("true_style" in r for r in rows):
        table = confusion(rows)
        summary["confusion"] = table
        summary["agreement_with_generator_styles"] = provenance_agreement(table)
        summary["agreement_per_style"] = agreement_per_style(table)
    return summary
