"""Provenance report: Markdown table, position plot, single-response plot and an HTML page of coloured actions."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cotdistill.provenance.classify import CATEGORIES, DEFAULT_ALPHA, DEFAULT_MARGIN
from cotdistill.report.tables import markdown_table

COLOURS = {"teacher": "#e4572e", "student": "#29335c", "shared": "#a8c686", "boosted": "#f3a712"}
LABELS = {"teacher": "teacher-originated", "student": "student-originated", "shared": "pre-existing, not enhanced",
          "boosted": "pre-existing, boosted"}


def summary_markdown(summary: dict) -> str:
    rows = [{"group": "overall", **summary["overall"]}]
    rows += [{"group": f"bench: {b}", **v} for b, v in summary["per_bench"].items()]
    rows += [{"group": "correct answers", **summary["correct"]}, {"group": "wrong answers", **summary["wrong"]}]
    text = (f"# Provenance of {summary['actions']} actions in {summary['responses']} responses\n\n"
            f"alpha = {summary['alpha']}, margin β = {_margin(summary)}, unit = {summary['unit']}\n\n"
            + markdown_table(rows, ["group", *CATEGORIES])
            + f"\nBoosted actions with p_D > p_S: {summary['boosted_raised_fraction']:.3f}\n\n"
            + "Area between correct and wrong position curves: "
            + ", ".join(f"{c} {v:.3f}" for c, v in summary["curve_area"].items()) + "\n")
    if "confusion" in summary:
        conf = [{"generator style": s, **v} for s, v in sorted(summary["confusion"].items())]
        text += ("\n## Categories against the generator's known sentence styles\n\n"
                 + markdown_table(conf, ["generator style", *CATEGORIES])
                 + f"\nAgreement: {summary['agreement_with_generator_styles']:.3f}\n")
    return text


def position_plot(summary: dict, path: Path) -> None:
    curves = summary["position_curves"]
    fig, axes = plt.subplots(1, len(CATEGORIES), figsize=(4 * len(CATEGORIES), 3.2), sharey=True)
    n = len(curves["correct"][CATEGORIES[0]])
    xs = [(i + 0.5) / n for i in range(n)]
    for ax, cat in zip(axes, CATEGORIES):
        a, b = curves["correct"][cat], curves["wrong"][cat]
        ax.plot(xs, a, color=COLOURS[cat], label="correct")
        ax.plot(xs, b, color=COLOURS[cat], linestyle="--", label="wrong")
        ax.fill_between(xs, a, b, color=COLOURS[cat], alpha=0.2)
        area = summary["curve_area"][cat]  # nan when one group (e.g. correct answers) has no response
        ax.set_title(f"{LABELS[cat]}\narea {area:.3f}" if area == area else f"{LABELS[cat]}\narea n/a (one group "
                     "empty)", fontsize=9)
        ax.set_xlabel("relative action position")
    axes[0].set_ylabel("share of actions")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def response_plot(rows: list[dict], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 3.2))
    xs = list(range(len(rows)))
    for x, r in zip(xs, rows):
        ax.axvspan(x - 0.5, x + 0.5, color=COLOURS[r["category"]], alpha=0.25, lw=0)
    for key, style in (("p_teacher", "-o"), ("p_student", "-s"), ("p_distilled", "-^")):
        ax.plot(xs, [r[key] for r in rows], style, markersize=3, label=key[2:])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("action")
    ax.set_ylabel("length-normalised probability")
    ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[c], alpha=0.4) for c in CATEGORIES]
    first = ax.legend(loc="lower left", fontsize=7)
    ax.add_artist(first)
    ax.legend(handles, [LABELS[c] for c in CATEGORIES], loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _margin(summary: dict) -> float:
    """β of a summary; summaries written before the rename call it ``beta``."""
    return summary.get("margin", summary.get("beta", DEFAULT_MARGIN))


def _definitions(alpha: float, beta: float) -> str:
    """What each colour means, with the thresholds of this trace (the rules are tried in this order)."""
    rules = {
        "shared": f"all three models agree: every pairwise difference of p_T, p_S, p_D is at most α = {alpha:g}",
        "teacher": f"the teacher prefers it: p_T − p_S > β = {beta:g}",
        "student": f"the original student prefers it: p_S − p_T > β = {beta:g}",
        "boosted": "teacher and student agree within β, but the three do not all agree within α (distillation "
                   "moved it)",
    }
    items = "".join(f'<li><span class="a" style="background:{COLOURS[c]}55">{LABELS[c]}</span>: {rules[c]}</li>'
                    for c in ("shared", "teacher", "student", "boosted"))
    return ("<p>Each sentence (<em>action</em>) of a response is scored by the teacher (p_T), the original student "
            "(p_S) and the distilled student (p_D) in the same context: the geometric-mean probability of its "
            f"tokens. The first rule that holds names it:</p><ol>{items}</ol>")


def _shares_line(rows: list[dict]) -> str:
    n = max(len(rows), 1)
    return " · ".join(f"{LABELS[c]} {sum(r['category'] == c for r in rows) / n:.2f}" for c in CATEGORIES)


def trace_html(samples: list[dict], rows: list[dict], limit: int = 50, summary: dict | None = None) -> str:
    by_sample: dict[int, list[dict]] = {}
    for r in rows:
        by_sample.setdefault(r["sample"], []).append(r)
    summary = summary or {}
    parts = ["<!doctype html><meta charset='utf-8'><title>cotdistill provenance</title><style>"
             "body{font-family:sans-serif;max-width:60em;margin:auto;line-height:1.45}"
             ".a{padding:1px 2px;border-radius:3px}.p{font-size:.7em;color:#555;margin-left:.3em}"
             ".r{white-space:pre-wrap;border:1px solid #ddd;padding:.6em;margin:.6em 0}img{max-width:100%}</style>",
             "<h1>Provenance of generated actions</h1>",
             _definitions(summary.get("alpha", DEFAULT_ALPHA), _margin(summary)),
             f"<p><b>All {len(rows)} actions of {len(by_sample)} responses:</b> {_shares_line(rows)}."
             + (f" Context: {html.escape(str(summary['context']))}." if "context" in summary else "") + "</p>",
             "<p><img src='position_shares.png' alt='category shares by position in the response'></p>"]
    for i in sorted(by_sample)[:limit]:
        sample, response, pos, out = samples[i], samples[i]["response"], 0, []
        for r in sorted(by_sample[i], key=lambda r: r["span"][0]):
            s, e = r["span"]
            tip = (f"{LABELS[r['category']]}: p_T={r['p_teacher']:.3f} p_S={r['p_student']:.3f} "
                   f"p_D={r['p_distilled']:.3f}")
            out.append(html.escape(response[pos:s]))
            out.append(f'<span class="a" style="background:{COLOURS[r["category"]]}55" title="{tip}">'
                       f"{html.escape(response[s:e])}</span>"
                       f'<span class="p">{r["p_teacher"]:.2f}/{r["p_student"]:.2f}/{r["p_distilled"]:.2f}</span>')
            pos = e
        out.append(html.escape(response[pos:]))
        verdict = "correct" if sample.get("correct") else "wrong"
        parts.append(f"<h3>#{i} ({verdict}, gold {html.escape(str(sample.get('gold')))})</h3>"
                     f"<p>{html.escape(sample['prompt'])}</p><p class='p'>{_shares_line(by_sample[i])} "
                     "(small numbers after each action: p_T / p_S / p_D)</p>"
                     f"<div class='r'>{''.join(out)}</div>")
    return "\n".join(parts)


def write_trace_report(out: Path, samples: list[dict], rows: list[dict], summary: dict) -> None:
    (out / "summary.md").write_text(summary_markdown(summary))
    position_plot(summary, out / "position_shares.png")
    by_sample: dict[int, list[dict]] = {}
    for r in rows:
        by_sample.setdefault(r["sample"], []).append(r)
    if by_sample:
        # the example: the response with the most teacher-originated actions, a vivid case
        best = max(by_sample, key=lambda i: sum(r["category"] == "teacher" for r in by_sample[i]))
        response_plot(by_sample[best], out / "response_example.png", f"response #{best}")
    (out / "trace.html").write_text(trace_html(samples, rows, summary=summary))
