from __future__ import annotations

import json

import pytest

from cotdistill.cli import main
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.stages import setting
from cotdistill.stages import sweep as sweep_module
from cotdistill.stages.sweep import SweepConfig
from tests.training.helpers import tiny_config


def test_sweep_writes_table_and_skips_finished_points(tmp_path, monkeypatch):
    base = tiny_config(tmp_path, **{"optim.max_steps": 2})
    config = SweepConfig(train=base, eval=EvalSpec(limit=2, max_new_tokens=4), lsps=[1.0, 0.5],
                         out=str(tmp_path / "sweep"))
    rows = sweep_module.run_sweep(config)
    assert [r["setting"] for r in rows] == ["lsp1", "lsp0.5"]
    for r in rows:  # the ratios are recomputed from the row's own figures
        assert r["compute"] == pytest.approx(r["flops"] / rows[0]["flops"])
        assert r["time_ratio"] == pytest.approx(r["wall_time_s"] / rows[0]["wall_time_s"])
    assert rows[0]["compute"] == 1.0 and 0.3 < rows[1]["compute"] < 0.6
    # paired against LSP 1.0 on the same two problems (the figures are checked in test_paired_reports.py)
    assert rows[0]["p_vs_ref"] is None and 0.0 <= rows[1]["p_vs_ref"] <= 1.0
    assert rows[1]["diff_vs_ref"] == pytest.approx(rows[1]["accuracy"] - rows[0]["accuracy"])
    import csv

    from PIL import Image

    with open(tmp_path / "sweep" / "tradeoff.csv") as fh:
        written = list(csv.DictReader(fh))
    assert [(r["setting"], float(r["flops"])) for r in written] == [(r["setting"], r["flops"]) for r in rows]
    table = (tmp_path / "sweep" / "tradeoff.md").read_text()
    assert all(f"| {r['setting']} |" in table for r in rows)
    with Image.open(tmp_path / "sweep" / "tradeoff.png") as image:
        assert image.format == "PNG" and min(image.size) >= 200

    def fail(*args, **kwargs):
        raise AssertionError("a finished point was run again")

    monkeypatch.setattr(setting, "train_in_subprocess", fail)
    monkeypatch.setattr("cotdistill.evaluation.benchmarks.evaluate_model", fail)
    again = sweep_module.run_sweep(config)
    assert [r["flops"] for r in again] == [r["flops"] for r in rows]


def test_tradeoff_table_ratios_against_the_full_sequence_reference():
    rows = [{"setting": "lsp0.5", "accuracy": 0.3, "flops": 45.0, "wall_time_s": 5.0, "peak_memory_mib": 60.0},
            {"setting": "lsp1", "accuracy": 0.4, "flops": 100.0, "wall_time_s": 10.0, "peak_memory_mib": 100.0}]
    table = sweep_module.tradeoff_table(rows)
    assert table[0]["retention"] == pytest.approx(0.75) and table[1]["retention"] == 1.0
    assert (table[0]["compute"], table[0]["time_ratio"], table[0]["memory_ratio"]) == pytest.approx((0.45, 0.5, 0.6))
    rows[1]["accuracy"] = 0.0  # a reference that never answers correctly has no retention to speak of
    assert all(r["retention"] != r["retention"] for r in sweep_module.tradeoff_table(rows))


def test_sweep_points():
    names = [p.name for p in sweep_module.sweep_points([0.5], ["left", "right"], ["cot"])]
    assert names == ["lsp1", "lsp0.5", "window-left", "window-right", "sections-cot"]


def test_ending_points_keep_the_ending_at_ending_lsp():
    points = sweep_module.sweep_points([0.5], [], [], ["answer", "tail:16", "whole:0.1"], ending_lsp=0.25)
    assert [p.name for p in points] == ["lsp1", "lsp0.5", "ending-answer", "ending-tail16", "ending-whole0.1"]
    assert points[2].encode == {"truncation": "lsp_keep_answer", "lsp": 0.25}
    assert points[3].encode == {"truncation": "lsp_keep_tail", "lsp": 0.25, "keep_tail": 16}
    assert points[4].encode == {"truncation": "lsp", "lsp": 0.25, "full_share": 0.1}
    assert points[0].encode["truncation"] == "none" and points[0].encode["full_share"] == 0.0
    assert [p.label for p in points] == ["LSP 1.0", "LSP 0.5", "LSP 0.25, the answer kept whole",
                                         "LSP 0.25, the last 16 tokens kept", "LSP 0.25, 10% of records whole"]
    # read from the checked overrides, not the words: tail:016 is 16 tokens, whole:0.125 is 12.5%
    odd = sweep_module.sweep_points([], [], [], ["tail:016", "whole:0.125"], ending_lsp=1 / 3)
    assert [p.label for p in odd[1:]] == ["LSP 0.333333, the last 16 tokens kept",
                                          "LSP 0.333333, 12.5% of records whole"]


@pytest.mark.parametrize("ending", ["tail", "tail:x", "whole:1.5", "answer:3", "middle"])
def test_a_bad_ending_is_refused_before_any_point_runs(ending):
    with pytest.raises(ValueError, match="endings must be"):
        sweep_module.SweepConfig(endings=[ending])


def test_on_policy_points_continue_their_lsp_point_or_start_from_the_student():
    points = sweep_module.sweep_points([1.0], [], [], on_policy=["after:40", "after:40:lead", "mix:0.25", "alone:9"],
                                       ending_lsp=0.5)
    # after: needs the LSP 0.5 point to continue from: added although --lsp named only 1.0
    assert [p.name for p in points] == ["lsp1", "lsp0.5", "onpolicy-after40", "onpolicy-after40-lead",
                                        "onpolicy-mix0.25", "onpolicy-alone9"]
    after, lead, mix, alone = points[2:]
    assert after.after == lead.after == "lsp0.5" and mix.after is None and alone.after is None
    assert after.encode["lsp"] == 1.0 and lead.encode["lsp"] == 0.5  # lead: rollouts cut at LSP 0.5's budget
    assert after.train["loss"] == {"distill_ratio": 1.0, "kind": "reverse_kl", "on_policy": 1.0}
    assert after.train["optim"]["max_steps"] == 40 and alone.train["optim"]["max_steps"] == 9
    assert mix.train == {"loss": {"on_policy": 0.25}} and mix.encode["lsp"] == 0.5  # its other steps: LSP 0.5's
    assert [p.label for p in points[2:]] == [
        "LSP 0.5, then 40 on-policy steps", "LSP 0.5, then 40 on-policy steps (rollouts cut at the lead)",
        "LSP 0.5, 25% of steps on-policy", "on-policy alone, 9 steps"]


@pytest.mark.parametrize("spec", ["after", "after:0", "after:4:half", "mix:0", "mix:1.5", "alone:4:lead", "during:3"])
def test_a_bad_on_policy_point_is_refused_before_any_point_runs(spec):
    with pytest.raises(ValueError, match="on_policy points are"):
        sweep_module.SweepConfig(on_policy=[spec])


def test_an_on_policy_point_costs_its_run_and_the_run_it_continues(tmp_path, monkeypatch):
    def fake(config, spec, where, **kwargs):
        flops = 100 if config.loss.on_policy == 0 else 30
        summary = {"examples": 8, "processed_tokens": 10, "supervised_tokens": 5, "flops": flops,
                   "sampling_flops": 0 if flops == 100 else 20, "wall_time_s": 1.0, "peak_memory_bytes": 2**20,
                   "steps": 3}
        (where / "train").mkdir(parents=True)
        (where / "train" / "run_summary.json").write_text(json.dumps(summary))
        fake.students.append(config.student)
        return summary, {"bench": "world", "accuracy": 0.5, "ci95": [0.1, 0.9], "truncated_responses": 0}

    fake.students = []
    monkeypatch.setattr(sweep_module, "train_and_evaluate", fake)
    cfg = sweep_module.SweepConfig(lsps=[0.5], on_policy=["after:4"], out=str(tmp_path), evaluate="final")
    base, after = (sweep_module.run_point(cfg, p, tmp_path) for p in sweep_module.sweep_points(
        [0.5], [], [], on_policy=["after:4"])[1:])
    assert fake.students[-1] == str(tmp_path / "lsp0.5" / "train" / "final")
    assert (base["flops"], after["flops"], after["sampling_flops"], after["tokens"]) == (100, 130, 20, 20)


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [m["model"] for m in summary["models"]][:2] == ["teacher (embedded)", "student (embedded)"]
    assert {r["setting"] for r in summary["tradeoff"]} == {"lsp1", "lsp0.5", "onpolicy-after2-lead"}
    assert summary["tradeoff"][1]["compute"] == pytest.approx(0.45, abs=0.1)
    on_policy = summary["tradeoff"][2]
    assert on_policy["sampling_flops"] > 0 and on_policy["compute"] > summary["tradeoff"][1]["compute"]
    said = "then 2 on-policy steps (rollouts cut at the lead)"
    assert any(said in s and "sampling" in s for s in summary["findings"])
    for name in ("index.html", "report.md", "distill/tradeoff.png", "provenance/lsp1/trace.html",
                 "selection/selection.png"):
        assert (tmp_path / "demo" / name).exists(), name
    assert "report:" in capsys.readouterr().out
