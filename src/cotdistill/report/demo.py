"""The demo's report: one Markdown file and one HTML page over everything the stages wrote."""

from __future__ import annotations

import html
import json
from pathlib import Path

from cotdistill.provenance.classify import CATEGORIES
from cotdistill.provenance.correlate import correlate
from cotdistill.report.tables import markdown_table
from cotdistill.sweep import TABLE_COLUMNS


def _models_table(baselines: dict, sweep_rows: list[dict], out: Path) -> list[dict]:
    rows = []
    for name, res in baselines.items():
        rows.append({"model": f"{name} (embedded)", "accuracy": res["accuracy"], "ci95": _ci(res["ci95"]),
                     **{f"d{k}": v for k, v in res["by_difficulty"].items()}})
    for r in sweep_rows:
        res = json.loads((out / "distill" / r["setting"] / "eval" / "results.json").read_text())
        rows.append({"model": f"distilled {r['setting']}", "accuracy": res["accuracy"], "ci95": _ci(res["ci95"]),
                     **{f"d{k}": v for k, v in res["by_difficulty"].items()}})
    return rows


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def write_demo_report(out: Path, baselines: dict, sweep_rows: list[dict], traces: dict, select_table: list[dict],
                      seconds: float) -> Path:
    models = _models_table(baselines, sweep_rows, out)
    accuracy = {r["setting"]: r["accuracy"] for r in sweep_rows}
    corr = correlate({name: (s, accuracy[name]) for name, s in traces.items()})
    prov_rows = [{"distilled": name, **s["overall"], "agreement": s.get("agreement_with_generator_styles"),
                  "boosted_raised": s["boosted_raised_fraction"]} for name, s in traces.items()]
    md = [f"# cotdistill demo report\n\nRan in {seconds:.0f} s on the embedded world.\n",
          "## Models on the world's test split (accuracy, overall and per difficulty = number of steps)\n",
          markdown_table(models),
          "\n## Truncation trade-off (distilled students)\n", markdown_table(sweep_rows, TABLE_COLUMNS),
          "\n![trade-off](distill/tradeoff.png)\n",
          "\n## Provenance of the distilled students' actions\n",
          markdown_table(prov_rows, ["distilled", *CATEGORIES, "agreement", "boosted_raised"]),
          "\n`agreement`: share of actions whose category matches the generator's known sentence style.\n",
          "\nTeacher share vs accuracy:\n\n", markdown_table(corr["table"]),
          f"\nSpearman ρ = {corr['spearman_teacher_share_vs_accuracy']:.3f} over {corr['n']} settings "
          "(with two settings ρ is ±1 or undefined: run `cotdistill sweep` with more points for a real estimate).\n",
          *[f"\n- {name}: [summary](provenance/{name}/summary.md), [actions](provenance/{name}/trace.html), "
            f"![positions](provenance/{name}/position_shares.png)\n" for name in traces],
          "\n## Teacher-guided data selection\n", markdown_table(select_table),
          "\n![selection](selection/selection.png)\n"]
    (out / "report.md").write_text("".join(md))
    (out / "summary.json").write_text(json.dumps({"models": models, "tradeoff": sweep_rows, "provenance": prov_rows,
                                                   "correlation": corr, "selection": select_table,
                                                   "seconds": seconds}, indent=2, default=str))
    page = ["<!doctype html><meta charset='utf-8'><title>cotdistill demo</title>",
            "<style>body{font-family:sans-serif;max-width:70em;margin:auto}pre{white-space:pre-wrap}"
            "img{max-width:100%}</style><h1>cotdistill demo report</h1>",
            f"<pre>{html.escape(''.join(md))}</pre>",
            "<img src='distill/tradeoff.png'>",
            *[f"<h3>{name}</h3><img src='provenance/{name}/position_shares.png'>"
              f"<img src='provenance/{name}/response_example.png'><p><a href='provenance/{name}/trace.html'>"
              "actions coloured by category</a></p>" for name in traces],
            "<img src='selection/selection.png'>"]
    (out / "index.html").write_text("\n".join(page))
    return out / "index.html"
