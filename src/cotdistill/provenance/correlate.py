"""Relate distilled students' share of teacher-originated actions to their accuracy (table + Spearman ρ)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks. NaN when either side is constant or n < 2."""
    if len(x) != len(y):
        raise ValueError(f"lengths differ: {len(x)} vs {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else float("nan")


def correlate(points: dict[str, tuple[dict, float]]) -> dict:
    """``points``: name → (trace summary, accuracy). Returns the table and ρ(teacher share, accuracy)."""
    table = [{"setting": name, "teacher_share": s["overall"]["teacher"], "boosted_share": s["overall"]["boosted"],
              "accuracy": acc} for name, (s, acc) in points.items()]
    rho = spearman([r["teacher_share"] for r in table], [r["accuracy"] for r in table])
    return {"table": table, "spearman_teacher_share_vs_accuracy": rho, "n": len(table)}


def correlate_dirs(pairs: list[tuple[str, str]]) -> dict:
    """``pairs``: (trace directory, results.json) per distilled model."""
    points = {}
    for trace_dir, results in pairs:
        summary = json.loads((Path(trace_dir) / "summary.json").read_text())
        points[str(trace_dir)] = (summary, json.loads(Path(results).read_text())["accuracy"])
    return correlate(points)
