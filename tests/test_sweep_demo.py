from __future__ import annotations

import json

import pytest

from cotdistill import sweep as sweep_module
from cotdistill.cli import main
from tests.train.helpers import tiny_config


def test_sweep_writes_table_and_skips_finished_points(tmp_path, monkeypatch):
    base = tiny_config(tmp_path, **{"optim.max_steps": 2})
    rows = sweep_module.run_sweep(base, tmp_path / "sweep", lsps=[1.0, 0.5], eval_limit=2, max_new_tokens=4,
                                  progress=False)
    assert [r["setting"] for r in rows] == ["lsp1", "lsp0.5"]
    assert rows[0]["retention"] != rows[0]["retention"] or rows[0]["retention"] == 1.0  # NaN when accuracy is 0
    assert rows[0]["compute"] == 1.0 and 0.3 < rows[1]["compute"] < 0.6
    for name in ("tradeoff.csv", "tradeoff.md", "tradeoff.png"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0

    def fail(*args, **kwargs):
        raise AssertionError("a finished point was run again")

    monkeypatch.setattr(sweep_module, "train_in_subprocess", fail)
    monkeypatch.setattr("cotdistill.evaluate.benchmarks.evaluate_model", fail)
    again = sweep_module.run_sweep(base, tmp_path / "sweep", lsps=[1.0, 0.5], eval_limit=2, progress=False)
    assert [r["flops"] for r in again] == [r["flops"] for r in rows]


def test_sweep_points():
    names = [p.name for p in sweep_module.sweep_points([0.5], ["left", "right"], ["cot"])]
    assert names == ["lsp1", "lsp0.5", "window-left", "window-right", "sections-cot"]


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [m["model"] for m in summary["models"]][:2] == ["teacher (embedded)", "student (embedded)"]
    assert {r["setting"] for r in summary["tradeoff"]} == {"lsp1", "lsp0.5"}
    assert summary["tradeoff"][1]["compute"] == pytest.approx(0.45, abs=0.1)
    for name in ("index.html", "report.md", "distill/tradeoff.png", "provenance/lsp1/trace.html",
                 "selection/selection.png"):
        assert (tmp_path / "demo" / name).exists(), name
    assert "report:" in capsys.readouterr().out
