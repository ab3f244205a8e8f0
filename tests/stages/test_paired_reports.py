"""The paired figures the sweep, the selection experiment and the demo write, from hand-made eval folders (no
training): every model-vs-model claim is a paired difference with its interval and McNemar's exact p.

The figures are worked out by hand from the outcomes. With d the per-problem differences (A - B) over n problems,
the interval is mean(d) ± 1.96·sd(d)/√n (sd with n - 1) and p = min(1, 2·P(X <= k)), X ~ Binomial(m, 1/2), for k
the smaller of the m discordant counts."""

from __future__ import annotations

import csv
import json
import math

import pytest

from cotdistill.evaluation.paired import load_scores, retention_interval
from cotdistill.report.demo import findings, write_demo_report
from cotdistill.report.tables import markdown_table
from cotdistill.stages import sweep as sweep_module
from cotdistill.stages.demo import demo_comparisons
from cotdistill.stages.select_experiment import cell_dir, paired_with_baseline, summarise_cells, write_experiment_report
from cotdistill.stages.sweep import SweepConfig

T_975_DF1 = 12.706204736174698  # Student's t 97.5% quantile, 1 degree of freedom (tables; scipy.stats.t.ppf)


def solved(n: int, which) -> list[int]:
    return [int(i in which) for i in range(n)]


def write_eval(folder, outcomes: list[int]) -> None:
    """A ``cotdistill eval`` folder: samples.jsonl (one sample per problem) and the results.json figures the
    report's model table reads."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt_index": i, "prompt": f"question {i}", "correct": bool(c)} for i, c in enumerate(outcomes)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    accuracy = sum(outcomes) / len(outcomes)
    (folder / "results.json").write_text(json.dumps({
        "n": len(outcomes), "accuracy": accuracy, "ci95": [max(accuracy - 0.1, 0.0), min(accuracy + 0.1, 1.0)],
        "truncated_responses": 0, "by_difficulty": {}, "model": "world:student"}))


# --- sweep ---------------------------------------------------------------------------------------------------------
def _point(setting: str, accuracy: float, flops: float) -> dict:
    return {"setting": setting, "label": f"{setting} in words", "records": 8, "tokens": 100, "supervised_tokens": 50,
            "flops": flops,
            "wall_time_s": flops / 10, "peak_memory_mib": 100.0, "bench": "world", "accuracy": accuracy,
            "ci95_low": 0.0, "ci95_high": 1.0, "at_limit": 3 if setting == "window-left" else 0}


def test_sweep_rows_compare_each_point_with_lsp1_on_the_same_problems(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    write_eval(out / "lsp1" / "eval", solved(10, range(5)))  # 0.5
    write_eval(out / "lsp0.5" / "eval", solved(10, range(3)))  # 0.3: two problems only LSP 1.0 solved
    write_eval(out / "window-left" / "eval", solved(10, range(5)))  # the reference's own outcomes
    rows = {"lsp1": _point("lsp1", 0.5, 100.0), "lsp0.5": _point("lsp0.5", 0.3, 45.0),
            "window-left": _point("window-left", 0.5, 50.0)}
    monkeypatch.setattr(sweep_module, "run_point", lambda cfg, point, where: dict(rows[point.name]))
    got = sweep_module._run_sweep_locked(SweepConfig(lsps=[1.0, 0.5], windows=["left"], out=str(out)), out)

    ref, half, window = got
    assert (ref["diff_vs_ref"], ref["diff_ci95"], ref["p_vs_ref"], ref["retention_ci95"]) == (None,) * 4
    # d = (0,0,0,-1,-1,0,0,0,0,0): mean -0.2, sd/√n = √(1.6/9/10) = 2/15; 0 vs 2 discordant: p = 2·(1/4)
    assert half["diff_vs_ref"] == pytest.approx(-0.2)
    assert half["diff_ci95"] == pytest.approx([-0.2 - 1.96 * 2 / 15, -0.2 + 1.96 * 2 / 15])
    assert half["p_vs_ref"] == pytest.approx(0.5)
    assert half["retention"] == pytest.approx(0.6)
    low, high = half["retention_ci95"]
    assert low < 0.6 < high <= 1.0  # a resample never has LSP 0.5 ahead: it solves a subset of LSP 1.0's
    # identical outcomes: no difference, no spread, p = 1, and every resampled ratio is exactly 1
    assert (window["diff_vs_ref"], window["diff_ci95"], window["p_vs_ref"]) == (0.0, [0.0, 0.0], 1.0)
    assert window["retention_ci95"] == [1.0, 1.0]

    table = (out / "tradeoff.md").read_text()
    # blanks on the reference
    # (FLOPs as 1.0e2, p to three decimals, ratios to two, accuracies to three, differences signed)
    assert "| lsp1 | lsp1 in words | 8 | 50 | 1.0e2 |  | 10 | 100 | 0.500 | 0 |  |  |  | 1.00 |  | 1.00 |" in table
    assert ("| window-left | window-left in words | 8 | 50 | 5.0e1 |  | 5 | 100 | 0.500 | 3 | +0.000 | "
            "[+0.000, +0.000] | 1.000 | 1.00 | [1.00, 1.00] | 0.50 |" in table)
    with open(out / "tradeoff.csv") as fh:
        written = {r["setting"]: r for r in csv.DictReader(fh)}
    assert written["lsp1"]["p_vs_ref"] == "" and float(written["lsp0.5"]["p_vs_ref"]) == pytest.approx(0.5)
    assert json.loads(written["lsp0.5"]["diff_ci95"]) == pytest.approx(half["diff_ci95"])
    assert (out / "tradeoff.png").stat().st_size > 0


def test_a_point_scored_on_other_problems_is_refused(tmp_path):
    from cotdistill.evaluation.paired import PairingError

    write_eval(tmp_path / "a", solved(10, range(5)))
    write_eval(tmp_path / "b", solved(8, range(5)))
    rows = [_point("lsp1", 0.5, 100.0), _point("lsp0.5", 0.625, 45.0)]
    with pytest.raises(PairingError, match="same problems"):
        sweep_module.paired_with_reference(rows, {"lsp1": load_scores(tmp_path / "a"),
                                                  "lsp0.5": load_scores(tmp_path / "b")})


# --- select-experiment ---------------------------------------------------------------------------------------------
def _cell(method: str, seed: int, accuracy: float) -> dict:
    return {"method": method, "seed": seed, "selected": 6, "supervised_tokens": 100, "accuracy": accuracy,
            "ci95": [accuracy - 0.1, accuracy + 0.1], "selected_correct_share": 0.5, "teacher_actions_mean": 1.0}


@pytest.fixture
def selection(tmp_path):
    out = tmp_path / "select"
    outcomes = {("random", 0): solved(10, {0}), ("teacher", 0): solved(10, range(3)),  # 0.1 / 0.3
                ("random", 1): solved(10, ()), ("teacher", 1): solved(10, range(4))}  # 0.0 / 0.4
    for (method, seed), got in outcomes.items():
        write_eval(cell_dir(out, method, seed) / "eval", got)
    cells = [_cell(m, s, sum(o) / 10) for (m, s), o in outcomes.items()]
    scores = {(m, s): load_scores(cell_dir(out, m, s) / "eval") for m, s in outcomes}
    return out, cells, scores


def test_each_selection_cell_is_paired_with_the_random_cell_of_its_seed(selection):
    _, cells, scores = selection
    by = {(c["method"], c["seed"]): c for c in paired_with_baseline(cells, scores)}
    assert by[("random", 0)]["diff_vs_random"] is None and by[("random", 1)]["p_vs_random"] is None
    # seed 0: d has two +1 in ten: mean 0.2, sd/√n = √(1.6/9/10) = 2/15; 2 vs 0 discordant: p = 2·(1/4)
    zero = by[("teacher", 0)]
    assert zero["diff_vs_random"] == pytest.approx(0.2) and zero["p_vs_random"] == pytest.approx(0.5)
    assert zero["diff_ci95"] == pytest.approx([0.2 - 1.96 * 2 / 15, 0.2 + 1.96 * 2 / 15])
    # seed 1: four +1 in ten: mean 0.4, sd/√n = √(2.4/9/10); 4 vs 0: p = 2·(1/16)
    one = by[("teacher", 1)]
    half = 1.96 * math.sqrt(2.4 / 90)
    assert one["diff_vs_random"] == pytest.approx(0.4) and one["p_vs_random"] == pytest.approx(0.125)
    assert one["diff_ci95"] == pytest.approx([0.4 - half, 0.4 + half])


def test_over_seeds_the_table_gives_mean_sd_and_the_t_interval_of_the_mean(selection):
    out, cells, scores = selection
    cells = paired_with_baseline(cells, scores)
    table = {r["method"]: r for r in summarise_cells(cells)}
    teacher = table["teacher"]
    # accuracies 0.3, 0.4: mean 0.35, sd 0.05·√2, t(0.975, 1)·sd/√2 = 12.706·0.05
    assert teacher["accuracy"] == pytest.approx(0.35) and teacher["sd"] == pytest.approx(0.05 * math.sqrt(2))
    assert (teacher["ci95_low"], teacher["ci95_high"]) == pytest.approx((0.35 - T_975_DF1 * 0.05,
                                                                         0.35 + T_975_DF1 * 0.05))
    # per-seed differences 0.2, 0.4: mean 0.3, sd 0.1·√2, half-width 12.706·0.1; p is per seed only
    assert teacher["diff_vs_random"] == pytest.approx(0.3) and teacher["diff_sd"] == pytest.approx(0.1 * math.sqrt(2))
    assert teacher["diff_ci95"] == pytest.approx([0.3 - T_975_DF1 * 0.1, 0.3 + T_975_DF1 * 0.1])
    assert teacher["p_vs_random"] is None
    assert table["random"]["diff_vs_random"] is None and table["random"]["accuracy"] == pytest.approx(0.05)

    write_experiment_report(out, cells, list(table.values()))
    report = (out / "selection.md").read_text()
    assert "McNemar" in report and "| teacher | 1 | 6 | 0.400 | [0.3, 0.5] | 0.4 |" in report
    assert (out / "selection.png").exists()


def test_with_one_seed_the_table_keeps_that_runs_interval_and_paired_figures(selection):
    _, cells, scores = selection
    one_seed = paired_with_baseline([c for c in cells if c["seed"] == 0], scores)
    teacher = {r["method"]: r for r in summarise_cells(one_seed)}["teacher"]
    assert (teacher["accuracy"], teacher["sd"], teacher["ci95_low"], teacher["ci95_high"]) == pytest.approx(
        (0.3, None, 0.2, 0.4))
    assert teacher["diff_vs_random"] == pytest.approx(0.2) and teacher["p_vs_random"] == pytest.approx(0.5)
    assert teacher["diff_ci95"] == pytest.approx([0.2 - 1.96 * 2 / 15, 0.2 + 1.96 * 2 / 15])


def test_without_a_random_cell_nothing_is_paired(selection):
    _, cells, scores = selection
    teacher = {key: got for key, got in scores.items() if key[0] == "teacher"}
    only = paired_with_baseline([c for c in cells if c["method"] == "teacher"], teacher)
    assert all(c["diff_vs_random"] is None for c in only)
    assert summarise_cells(only)[0]["diff_ci95"] is None


# --- the demo ------------------------------------------------------------------------------------------------------
@pytest.fixture
def demo(tmp_path):
    """20 problems. student: 0-1; teacher: 0-11; LSP 1.0: 0-5; LSP 0.5: 0-2; selection seed 0: teacher-guided
    0-4, random 0-1 (each set contains the smaller ones, so every discordant pair goes one way)."""
    out = tmp_path / "demo"
    for folder, last in (("eval/student", 2), ("eval/teacher", 12), ("distill/lsp1/eval", 6),
                         ("distill/lsp0.5/eval", 3), ("selection/teacher-seed0/eval", 5),
                         ("selection/random-seed0/eval", 2)):
        write_eval(out / folder, solved(20, range(last)))
    return out


def test_demo_comparisons_pair_every_claim_on_the_same_problems(demo):
    got = demo_comparisons(demo, ["lsp1", "lsp0.5"], ["teacher", "random"], [0])
    assert got["level"] == 0.05
    found = {(c["kind"], c["a"], c["b"]): c for c in got["comparisons"]}
    assert list(found) == [("teacher_vs_student", "teacher", "student"), ("distilled_vs_student", "lsp1", "student"),
                           ("distilled_vs_student", "lsp0.5", "student"),
                           ("setting_vs_reference", "lsp0.5", "lsp1"), ("selection", "teacher", "random"),
                           ("selection_vs_student", "teacher", "student"),
                           ("selection_vs_student", "random", "student")]
    # teacher-guided selection 0-4 against the student's 0-1: three +1 in twenty, 3 vs 0, p = 2/8; random ties
    picked = found[("selection_vs_student", "teacher", "student")]
    assert (picked["difference"], picked["a_better"], picked["b_better"]) == (pytest.approx(0.15), 3, 0)
    assert picked["p_value"] == pytest.approx(0.25) and not picked["difference_claimed"]
    assert found[("selection_vs_student", "random", "student")]["p_value"] == 1.0
    assert "teacher-guided selection (seed 0) vs the original student" in picked["sentence"]
    # ten +1 in twenty: mean 0.5, sd/√n = √(5/19/20); 10 vs 0: p = 2/2^10
    teacher = found[("teacher_vs_student", "teacher", "student")]
    half = 1.96 * math.sqrt(5 / 19 / 20)
    assert (teacher["difference"], teacher["a_better"], teacher["b_better"]) == (pytest.approx(0.5), 10, 0)
    assert teacher["ci95"] == pytest.approx([0.5 - half, 0.5 + half])
    assert teacher["p_value"] == pytest.approx(2 / 1024) and teacher["difference_claimed"]
    # three -1 in twenty: mean -0.15, sd/√n = √(2.55/19/20); 0 vs 3: p = 2/8; retention 0.15 / 0.30
    lsp = found[("setting_vs_reference", "lsp0.5", "lsp1")]
    half = 1.96 * math.sqrt(2.55 / 19 / 20)
    assert lsp["difference"] == pytest.approx(-0.15) and lsp["ci95"] == pytest.approx([-0.15 - half, -0.15 + half])
    assert lsp["p_value"] == pytest.approx(0.25) and not lsp["difference_claimed"]
    assert lsp["retention"] == pytest.approx(0.5)
    bootstrap = retention_interval(load_scores(demo / "distill/lsp0.5/eval"), load_scores(demo / "distill/lsp1/eval"))
    assert lsp["retention_ci95"] == list(bootstrap[1:])
    assert found[("selection", "teacher", "random")]["seed"] == 0
    # no random cell among the methods: no teacher-vs-random sentence (the teacher-guided cell still meets the student)
    assert all(c["kind"] != "selection" for c in demo_comparisons(demo, ["lsp1"], ["teacher"], [0])
               ["comparisons"])


def _sweep_rows() -> list[dict]:
    """Rows of a sweep written before points had labels: sentences name them by their setting."""
    rows = [{**_point("lsp1", 0.3, 100.0), "compute": 1.0, "time_ratio": 1.0, "memory_ratio": 1.0},
            {**_point("lsp0.5", 0.15, 45.0), "compute": 0.45, "time_ratio": 0.5, "memory_ratio": 0.8}]
    return [{k: v for k, v in row.items() if k != "label"} for row in rows]


def test_demo_findings_state_the_paired_figures(demo):
    comparisons = demo_comparisons(demo, ["lsp1", "lsp0.5"], ["teacher", "random"], [0])
    cells = [{**_cell("teacher", 0, 0.25), "teacher_actions_mean": 3.0}, _cell("random", 0, 0.1)]
    said = findings(comparisons, _sweep_rows(), [], cells, "world:student")
    assert said[0] == ("The teacher vs the original student: +0.500 [+0.275, +0.725], McNemar p = 0.002 (10 vs 0 "
                       "problems); a difference can be claimed at 0.05: the teacher scores higher.")
    # the interval [+0.020, +0.380] excludes 0 but p = 0.125: both must agree before a difference is claimed
    assert said[1] == ("The student distilled at lsp1 vs the original student: +0.200 [+0.020, +0.380], McNemar "
                       "p = 0.125 (4 vs 0 problems); no difference can be claimed at 0.05.")
    low, high = comparisons["comparisons"][3]["retention_ci95"]
    assert said[3] == ("Distilling at lsp0.5 cost 0.45 of the FLOPs, 0.50 of the training time and 0.80 of the peak "
                       "memory of LSP 1.0; 0 of its answers ran to the token limit; its retention (accuracy / "
                       "accuracy at LSP 1.0) is "
                       f"0.50 [{low:.2f}, {high:.2f}] (paired bootstrap over the test problems). The student "
                       "distilled at lsp0.5 vs the LSP 1.0 student: -0.150 [-0.311, +0.011], McNemar p = 0.250 (0 vs "
                       "3 problems); no difference can be claimed at 0.05.")
    # 3 vs 0 discordant: mean 0.15, sd/√n = √(2.55/19/20), p = 2/8
    assert said[4] == ("Selection: the teacher-guided pick carried 3.0 teacher-originated actions per record, random "
                       "1.0. The student trained on the teacher-guided selection (seed 0) vs the one trained on a "
                       "random selection: +0.150 [-0.011, +0.311], McNemar p = 0.250 (3 vs 0 problems); no "
                       "difference can be claimed at 0.05.")
    # that unclaimed difference is the demo's size speaking: the full experiment's figures stand beside it
    assert said[5].startswith("At the demo's size (6 selected records, 1 seed) teacher-guided and random selection "
                              "cannot be told apart; the full experiment (`cotdistill select-experiment`, 1,000 "
                              "questions, 3 seeds; docs/results.md, \"Teacher-guided selection against the "
                              "baselines\")")
    assert "teacher-guided 0.284 ± 0.016, random 0.292 ± 0.044" in said[5]
    assert said[6].startswith("The student trained on the teacher-guided selection (seed 0) vs the original student")


def test_demo_sentences_name_each_setting_by_its_sweep_label(demo):
    labels = {"lsp1": "LSP 1.0", "lsp0.5": "LSP 0.5"}
    comparisons = demo_comparisons(demo, ["lsp1", "lsp0.5"], ["teacher"], [0], labels=labels)
    rows = [{**row, "label": labels[row["setting"]]} for row in _sweep_rows()]
    provenance = [{"distilled": "lsp0.5", "teacher": 0.5, "student": 0.25, "shared": 0.125, "boosted": 0.125}]
    said = findings(comparisons, rows, provenance, [], "world:student")
    assert said[1].startswith("The student distilled at LSP 1.0 vs the original student: +0.200")
    assert said[4] == ("Provenance of the actions of the student distilled at LSP 0.5: teacher 0.50, student 0.25, "
                       "shared 0.12, boosted 0.12.")
    assert said[3].startswith("Distilling at LSP 0.5 cost 0.45 of the FLOPs")
    assert "The student distilled at LSP 0.5 vs the LSP 1.0 student: -0.150" in said[3]


def test_demo_findings_quote_the_full_selection_experiment_only_for_its_student_and_only_when_unclaimed(demo):
    comparisons = demo_comparisons(demo, ["lsp1"], ["teacher", "random"], [0])
    cells = [{**_cell("teacher", 0, 0.25), "selected": 48}, _cell("random", 0, 0.1)]
    said = findings(comparisons, _sweep_rows()[:1], [], cells, "real:smollm2-135m-instruct")
    assert ("At the demo's size (48 selected records, 1 seed) teacher-guided and random selection cannot be told "
            "apart, and no full-size selection experiment has been run with this student "
            "(real:smollm2-135m-instruct).") in said
    assert not any("0.284" in s for s in said)
    # a claimed teacher-vs-random difference needs no excuse of size
    for c in comparisons["comparisons"]:
        c["difference_claimed"] = c["difference_claimed"] or c["kind"] == "selection"
    assert not any(s.startswith("At the demo's size") for s in findings(comparisons, _sweep_rows()[:1], [], cells,
                                                                          "world:student"))
    # no random cell: nothing to tell apart, no sentence
    alone = demo_comparisons(demo, ["lsp1"], ["teacher"], [0])
    assert not any(s.startswith("At the demo's size") for s in findings(alone, _sweep_rows()[:1], [], cells[:1],
                                                                          "world:student"))


def test_demo_report_renders_the_comparisons_the_stage_wrote(demo):
    comparisons = demo_comparisons(demo, ["lsp1", "lsp0.5"], ["teacher", "random"], [0])
    (demo / "comparisons.json").write_text(json.dumps(comparisons))
    baselines = {name: json.loads((demo / "eval" / name / "results.json").read_text()) for name in ("teacher",
                                                                                                  "student")}
    corr = {"table": [], "spearman_teacher_share_vs_accuracy": float("nan"), "n": 2}
    cells = [_cell("teacher", 0, 0.25), _cell("random", 0, 0.1)]
    write_demo_report(demo, baselines, _sweep_rows(), {}, corr, cells, [{"method": "teacher"}], 1.0)
    text = (demo / "report.md").read_text()
    assert "overlap" not in text
    assert "interval excludes 0 and p < 0.05" in text
    assert "+0.500 [+0.275, +0.725], McNemar p = 0.002" in text
    summary = json.loads((demo / "summary.json").read_text())
    assert len(summary["comparisons"]) == 7 and (demo / "index.html").exists()
    assert "the random selection (seed 0) vs the original student: +0.000" in text
    assert "At the demo's size (6 selected records, 1 seed)" in text


def test_tables_leave_a_figure_that_does_not_apply_blank_and_write_intervals_as_pairs():
    assert markdown_table([{"a": None, "b": [0.25, 0.5]}]) == "| a | b |\n|---|---|\n|  | [0.25, 0.5] |\n"
