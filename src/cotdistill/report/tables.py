"""Markdown and CSV tables from lists of dicts."""

from __future__ import annotations

import csv
from pathlib import Path

from cotdistill.figures import p_text, scientific

# the truncation trade-off table, as the sweep writes it and the demo report shows it; diff_vs_ref, diff_ci95,
# p_vs_ref and retention_ci95 compare each point with LSP 1.0 on the same problems (paired), blank on LSP 1.0 itself
TRADEOFF_COLUMNS = ["setting", "label", "records", "supervised_tokens", "flops", "sampling_flops", "wall_time_s",
                    "peak_memory_mib", "accuracy", "at_limit", "diff_vs_ref", "diff_ci95", "p_vs_ref", "retention",
                    "retention_ci95", "compute", "time_ratio", "memory_ratio"]


def _each(format_one):
    """A formatter for a value or an interval ``[low, high]`` of such values."""
    def format_value(value) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(format_value(v) for v in value) + "]"
        return format_one(value)
    return format_value


# how a Markdown table shows a column (the CSV keeps every digit): FLOPs as 1.2e13, p as < 0.001, ratios to two
# decimals, accuracies and their differences to three (differences signed)
COLUMN_FORMATS = {
    "flops": _each(scientific), "sampling_flops": _each(scientific), "p_vs_ref": _each(p_text),
    **{c: _each(lambda v: "nan" if v != v else f"{v:.2f}")
       for c in ("retention", "retention_ci95", "compute", "time_ratio", "memory_ratio")},
    **{c: _each(lambda v: f"{v:+.3f}") for c in ("diff_vs_ref", "diff_ci95")},
    "accuracy": _each(lambda v: f"{v:.3f}"),
}


def _fmt(value) -> str:
    if value is None:  # a figure that does not apply to this row (a point compared with itself)
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, (list, tuple)):  # an interval: [low, high]
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _cell(value, column: str) -> str:
    if value is None or value == "" or column not in COLUMN_FORMATS:
        return _fmt(value)
    return COLUMN_FORMATS[column](value)


def escape_markdown(text: str) -> str:
    """``text`` as literal Markdown text on one line: ``\\``, ``|`` (a cell border), ``<`` and ``>`` (a tag, in a
    renderer that passes HTML through) escaped by a backslash, line breaks made spaces. For every value a file or a
    model wrote (a bench name, a difficulty level) that goes into a report."""
    for char in ("\\", "|", "<", ">"):  # the backslash first: the escapes added after it stay single
        text = text.replace(char, "\\" + char)
    return " ".join(text.splitlines())


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(escape_markdown(str(c)) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(escape_markdown(_cell(r.get(c, ""), c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: str | Path, columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
