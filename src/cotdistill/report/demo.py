"""The demo's report: one Markdown file and one HTML page over everything the stages wrote, with the findings
said in words. Every model-vs-model claim is the stage's paired comparison (``comparisons.json``): a difference
with its 95% interval and McNemar's exact p, claimed only where the interval excludes 0 and p < 0.05."""

from __future__ import annotations

import json
from pathlib import Path

from cotdistill.provenance.classify import CATEGORIES
from cotdistill.report.tables import TRADEOFF_COLUMNS, escape_markdown, markdown_table


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _model_row(label: str, res: dict) -> dict:
    return {"model": label, "accuracy": res["accuracy"], "ci95": _ci(res["ci95"]),
            "flexible": res.get("accuracy_flexible", float("nan")), "unfinished": res["truncated_responses"],
            "n": res["n"], **{f"d{k}": v for k, v in res["by_difficulty"].items()}}


def setting_label(rows: dict[str, dict], name: str) -> str:
    """How sentences name a sweep setting: its label, or its name in a sweep written before points had labels."""
    return rows.get(name, {}).get("label") or name


def _sentence(c: dict) -> str:
    return c["sentence"][:1].upper() + c["sentence"][1:] + "."


def _retention(c: dict) -> str:
    if c["retention"] != c["retention"]:
        return "undefined (LSP 1.0 never answers correctly)"
    low, high = c["retention_ci95"]
    interval = "" if low != low else f" [{low:.2f}, {high:.2f}] (paired bootstrap over the test problems)"
    return f"{c['retention']:.2f}{interval}"


# What the demo's selection stage is too small to tell, measured at full size: `cotdistill select-experiment` with the
# world's original student, 1,000 questions x 4 teacher samples, 3 seeds, 357 SFT steps (docs/results.md section 6,
# session 6). Quoted, never recomputed: a demo-sized run cannot reproduce it, and the sentence says whose it is.
FULL_SELECTION_STUDENT = "world:student"
FULL_SELECTION_FIGURES = ("the full experiment (`cotdistill select-experiment`, 1,000 questions, 3 seeds; "
                          "docs/results.md, \"Teacher-guided selection against the baselines\") measured, as "
                          "unpaired means ± sd over the seeds, teacher-guided 0.284 ± 0.016, random 0.292 ± 0.044 and "
                          "shortest 0.320 ± 0.029 (the original student: 0.223): teacher-guided not above random there "
                          "either")


def selection_size_sentence(comparisons: list[dict], select_cells: list[dict], student: str) -> str | None:
    """Where no teacher-guided-vs-random comparison is claimed: that the demo's size cannot tell them apart, with the
    full experiment's figures beside it when it was run with this student (else that none has been)."""
    if not comparisons or any(c["difference_claimed"] for c in comparisons):
        return None
    records = max(c.get("selected", 0) for c in select_cells) if select_cells else 0
    seeds = len({c["seed"] for c in comparisons})
    head = (f"At the demo's size ({records} selected records, {seeds} seed{'s' if seeds > 1 else ''}) teacher-guided "
            "and random selection cannot be told apart")
    if student == FULL_SELECTION_STUDENT:
        return f"{head}; {FULL_SELECTION_FIGURES}."
    return f"{head}, and no full-size selection experiment has been run with this student ({student})."


def findings(comparisons: dict, sweep_rows: list[dict], prov_rows: list[dict], select_cells: list[dict],
             student: str) -> list[str]:
    """The report's sentences, each rendered from figures a stage computed (``comparisons``: the demo's
    ``comparisons.json``, every model-vs-model claim paired on the same test problems; ``student``: the original
    student, as its evaluation names it)."""
    by_kind: dict[str, list[dict]] = {}
    for c in comparisons["comparisons"]:
        by_kind.setdefault(c["kind"], []).append(c)
    out = [_sentence(c) for kind in ("teacher_vs_student", "distilled_vs_student")
           for c in by_kind.get(kind, [])]
    rows = {r["setting"]: r for r in sweep_rows}
    for c in by_kind.get("setting_vs_reference", []):
        r = rows[c["a"]]
        sampling = (f" (the student's own sampling {r['sampling_flops'] / r['flops']:.2f} of that)"
                    if r.get("sampling_flops") else "")
        out.append(f"Distilling at {setting_label(rows, c['a'])} cost {r['compute']:.2f} of the FLOPs{sampling}, "
                   f"{r['time_ratio']:.2f} of the training time and {r['memory_ratio']:.2f} of the peak memory of "
                   f"LSP 1.0; {r['at_limit']} of its answers ran to the token limit; its retention (accuracy / "
                   f"accuracy at LSP 1.0) is {_retention(c)}. {_sentence(c)}")
    for row in prov_rows:
        mix = ", ".join(f"{c} {row[c]:.2f}" for c in CATEGORIES)
        agree = row.get("agreement")
        name = setting_label(rows, row["distilled"])
        out.append(f"Provenance of the actions of the student distilled at {name}: {mix}"
                   + (f"; {agree:.2f} of the actions whose generator style is known land in the matching "
                      "category." if agree == agree and agree is not None else "."))
    by_method = {c["method"]: c for c in select_cells}
    if "teacher" in by_method and "random" in by_method:
        t, r = by_method["teacher"], by_method["random"]
        out.append(f"Selection: the teacher-guided pick carried {t['teacher_actions_mean']:.1f} teacher-originated "
                   f"actions per record, random {r['teacher_actions_mean']:.1f}. "
                   + " ".join(_sentence(c) for c in by_kind.get("selection", [])))
    size = selection_size_sentence(by_kind.get("selection", []), select_cells, student)
    out += [size] if size else []
    out += [_sentence(c) for c in by_kind.get("selection_vs_student", [])]
    return out


def how_claims_are_decided(level: float) -> str:
    return ("Every comparison of two models is paired: both answered the same test problems, so it is read from "
            "the per-problem outcomes. *A vs B: difference [95% interval], McNemar p (problems only A solved vs "
            "problems only B solved)*, where the difference is A's accuracy minus B's and p is McNemar's exact "
            f"test. A difference is claimed only where its interval excludes 0 and p < {level:g}; elsewhere the "
            "sentence says that none can be claimed.\n\n")


def write_demo_report(out: Path, baselines: dict, sweep_rows: list[dict], traces: dict, corr: dict,
                      select_cells: list[dict], select_table: list[dict], seconds: float) -> Path:
    """Render what the stages wrote; ``corr`` is the teacher-share / accuracy correlation the demo computed."""
    comparisons = json.loads((out / "comparisons.json").read_text())
    distilled = {r["setting"]: json.loads((out / "distill" / r["setting"] / "eval" / "results.json").read_text())
                 for r in sweep_rows}
    models = [_model_row(f"{name} (embedded)", res) for name, res in baselines.items()]
    rows = {r["setting"]: r for r in sweep_rows}
    models += [_model_row(f"distilled at {setting_label(rows, name)}", res) for name, res in distilled.items()]
    prov_rows = [{"distilled": name, **s["overall"], "agreement": s.get("agreement_with_generator_styles"),
                  **{f"agree_{k}": v for k, v in s.get("agreement_per_style", {}).items()},
                  "boosted_raised": s["boosted_raised_fraction"]} for name, s in traces.items()]
    student = baselines.get("student", {}).get("model", "an unnamed student")  # as its evaluation named it
    said = findings(comparisons, sweep_rows, prov_rows, select_cells, student)
    md = [f"# cotdistill demo report\n\nRan in {seconds:.0f} s on the embedded world.\n\n## What the figures show\n\n",
          how_claims_are_decided(comparisons["level"]),
          *[f"- {escape_markdown(s)}\n" for s in said],  # names and figures read back from files: text
          "\n## Models on the world's test split\n\nStrict accuracy (an answer the model gave: boxed or the answer "
          "line), its CI95 (Wilson), the flexible column (adds the last number in the text; never the score), "
          "responses that hit the token limit, and accuracy per difficulty (d2…d6 = number of steps).\n\n",
          markdown_table(models),
          "\n## Truncation trade-off (distilled students)\n\nCost of each setting against LSP 1.0: training FLOPs "
          "(`compute`; an on-policy setting's include its sampling, `sampling_flops`, and the LSP run it continues), "
          "wall time and peak memory, measured in the same run; `diff_vs_ref` [`diff_ci95`], "
          "`p_vs_ref` and `retention_ci95` compare each setting with LSP 1.0 on the same problems (paired).\n\n",
          markdown_table(sweep_rows, TRADEOFF_COLUMNS),
          "\n![trade-off](distill/tradeoff.png)\n",
          "\n## Provenance of the distilled students' actions\n\nEach sentence a distilled student wrote, scored "
          "under teacher, original student and distilled student with the same context. `agreement`: share of "
          "actions whose category matches the generator's known sentence style (teacher → teacher-originated, "
          "student → student-originated, shared → pre-existing); `agree_*` per style.\n\n",
          markdown_table(prov_rows, ["distilled", *CATEGORIES, "agreement",
                                     *[k for k in (prov_rows[0] if prov_rows else {}) if k.startswith("agree_")],
                                     "boosted_raised"]),
          "\nTeacher share vs accuracy:\n\n", markdown_table(corr["table"]),
          f"\nSpearman ρ = {corr['spearman_teacher_share_vs_accuracy']:.3f} over {corr['n']} settings "
          "(with two settings ρ is ±1 or undefined: run `cotdistill sweep` with more points for a real estimate).\n",
          *[f"\n- {name}: [summary](provenance/{name}/summary.md), [actions](provenance/{name}/trace.html)\n\n"
            f"  ![positions](provenance/{name}/position_shares.png)\n" for name in traces],
          "\n## Teacher-guided data selection\n\nSeveral teacher samples per question; each method keeps one per "
          "question, the original student is fine-tuned on the selection and evaluated on the same test problems."
          "\n\n", markdown_table(select_table),
          "\n![selection](selection/selection.png)\n"]
    text = "".join(md)
    (out / "report.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"models": models, "tradeoff": sweep_rows, "provenance": prov_rows,
                                                   "correlation": corr, "selection": select_table,
                                                   "comparisons": comparisons["comparisons"],
                                                   "findings": said, "seconds": seconds}, indent=2, default=str))
    (out / "index.html").write_text(markdown_page("cotdistill demo", text))
    return out / "index.html"


def markdown_page(title: str, text: str) -> str:
    """``text`` (Markdown) rendered as an HTML page: tables, images and links as a browser shows them. HTML in the
    text is shown as text, never passed through: the report holds what files and models wrote (a results.json
    planted in the demo's folder put ``<img onerror=…>`` in the page)."""
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    style = ("body{font-family:system-ui,sans-serif;max-width:75em;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:.9em;display:block;overflow-x:auto;max-width:100%}"
             "td,th{border:1px solid #ccc;padding:.25em"
             " .6em;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")
