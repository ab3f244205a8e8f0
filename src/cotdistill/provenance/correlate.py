"""Relate distilled students' share of teacher-originated actions to their accuracy (table + Spearman ρ)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from cotdistill.data.formats import read_json_object
from cotdistill.data.records import DataError
from cotdistill.errors import UserError

logger = logging.getLogger(__name__)


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
    if not all(math.isfinite(v) for v in (*x, *y)):  # a NaN has no rank: sorting put it anywhere
        raise ValueError("spearman needs finite values; leave out the points that have none")
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else float("nan")


def correlate(points: dict[str, tuple[dict, float]]) -> dict:
    """``points``: name → (trace summary, accuracy). Returns the table (every point) and ρ(teacher share, accuracy)
    over the points where both are numbers; ``n`` counts those, ``left_out`` names the others."""
    table = [{"setting": name, "teacher_share": s["overall"]["teacher"], "boosted_share": s["overall"]["boosted"],
              "accuracy": acc} for name, (s, acc) in points.items()]
    kept, left_out = [], []
    for row in table:
        bad = [key for key in ("teacher_share", "accuracy") if not math.isfinite(row[key])]
        if bad:
            logger.warning("%s: %s is %r, not a finite number; left out of Spearman's rho", row["setting"], bad[0],
                           row[bad[0]])
            left_out.append(row["setting"])
        else:
            kept.append(row)
    rho = spearman([r["teacher_share"] for r in kept], [r["accuracy"] for r in kept])
    return {"table": table, "spearman_teacher_share_vs_accuracy": rho, "n": len(kept), "left_out": left_out}


def _number(value: object, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(source, None, f"{where} as a number", f"{where} {value!r}")
    return float(value)


def _trace_point(trace_dir: str, results: str) -> tuple[dict, float]:
    """The trace's summary and the model's accuracy, each checked where it is read."""
    source = str(Path(trace_dir) / "summary.json")
    summary = read_json_object(source)
    overall = summary.get("overall")
    if not isinstance(overall, dict):
        raise DataError(source, None, "an 'overall' object (the summary.json of `cotdistill trace`)",
                        f"keys {sorted(summary)}")
    shares = {key: _number(overall.get(key), f"overall.{key}", source) for key in ("teacher", "boosted")}
    scores = read_json_object(results)
    if "accuracy" not in scores:
        raise DataError(str(results), None, "an accuracy (the results.json of `cotdistill eval`)",
                        f"no accuracy among keys {sorted(scores)}")
    return summary | {"overall": overall | shares}, _number(scores["accuracy"], "accuracy", str(results))


def correlate_dirs(pairs: list[tuple[str, str]]) -> dict:
    """``pairs``: (trace directory, results.json) per distilled model; each trace directory once."""
    seen: dict[Path, str] = {}
    for trace_dir, _ in pairs:
        folder = Path(trace_dir).resolve()
        if folder in seen:  # keyed by folder, the second would replace the first: a point silently lost
            raise UserError(f"{trace_dir}: given twice (as {seen[folder]} before); give each distilled model's "
                            "trace once")
        seen[folder] = trace_dir
    return correlate({str(trace_dir): _trace_point(trace_dir, results) for trace_dir, results in pairs})
