"""``cotdistill sweep``: train and evaluate one student per truncation setting, then tabulate cost against quality.

Each point lives in ``OUT/<name>/`` with its ``train/run_summary.json`` and ``eval/results.json``; a point whose
files exist is not run again. The table has, per setting: supervised tokens, FLOPs, wall time, peak memory,
accuracy, retention = accuracy / accuracy at the reference (LSP 1.0) and compute = FLOPs / reference FLOPs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cotdistill.config import from_dict, merge, save_config, to_dict
from cotdistill.outputs import output_lock
from cotdistill.training.config import TrainConfig
from cotdistill.world import WORLD_MAX_NEW_TOKENS


@dataclass
class SweepPoint:
    name: str
    encode: dict  # overrides of TrainConfig.encode


def sweep_points(lsps: list[float], windows: list[str], sections: list[str]) -> list[SweepPoint]:
    """LSP points (lsp=1.0 is the full-sequence reference), window points, and section-allocation points."""
    points = []
    for lsp in lsps:
        enc = {"truncation": "none", "lsp": 1.0} if lsp >= 1.0 else {"truncation": "lsp", "lsp": lsp}
        points.append(SweepPoint(f"lsp{lsp:g}", enc))
    for w in windows:
        points.append(SweepPoint(f"window-{w}", {"truncation": "window", "window": w, "lsp": 0.5}))
    for s in sections:
        points.append(SweepPoint(f"sections-{s}", {"sections": s}))
    if not any(p.name == "lsp1" for p in points):  # retention needs the full-sequence reference
        points.insert(0, SweepPoint("lsp1", {"truncation": "none", "lsp": 1.0}))
    return points


class SweepPointError(RuntimeError):
    pass


def train_in_subprocess(config: TrainConfig, config_file: Path) -> None:
    """Train in a fresh process: on CPU the peak-memory reading (resident set size) is only clean in a process
    whose allocator has not already grown for an earlier setting."""
    save_config(config, config_file)
    run = subprocess.run([sys.executable, "-m", "cotdistill", "train", str(config_file)], stderr=subprocess.PIPE,
                         text=True)
    if run.returncode != 0:
        last = [line for line in run.stderr.strip().splitlines() if line.strip()][-1:] or ["(no message)"]
        raise SweepPointError(f"training {config_file.parent.name} failed: {last[0]}")


def run_point(base: TrainConfig, point: SweepPoint, out: Path, eval_limit: int | None, max_new_tokens: int,
              progress: bool) -> dict:
    from cotdistill.evaluation.benchmarks import evaluate_model

    point_dir = out / point.name
    summary_file, results_file = point_dir / "train" / "run_summary.json", point_dir / "eval" / "results.json"
    if not summary_file.exists():
        config = from_dict(TrainConfig, merge(to_dict(base), {"output_dir": str(point_dir / "train"),
                                                              "encode": point.encode}))
        train_in_subprocess(config, point_dir / "train.yaml")
    if not results_file.exists():
        evaluate_model(str(point_dir / "train" / "final"), "world", limit=eval_limit, out_dir=point_dir / "eval",
                       max_new_tokens=max_new_tokens, progress=progress)
    summary = json.loads(summary_file.read_text())
    results = json.loads(results_file.read_text())
    return {"setting": point.name, "records": summary["examples"], "tokens": summary["processed_tokens"],
            "supervised_tokens": summary["supervised_tokens"], "flops": summary["flops"],
            "wall_time_s": summary["wall_time_s"], "peak_memory_mib": summary["peak_memory_bytes"] / 2**20,
            "accuracy": results["accuracy"], "ci95_low": results["ci95"][0], "ci95_high": results["ci95"][1]}


def tradeoff_table(rows: list[dict], reference: str = "lsp1") -> list[dict]:
    ref = next(r for r in rows if r["setting"] == reference)
    for r in rows:
        r["retention"] = r["accuracy"] / ref["accuracy"] if ref["accuracy"] > 0 else float("nan")
        r["compute"] = r["flops"] / ref["flops"]
        r["time_ratio"] = r["wall_time_s"] / ref["wall_time_s"]
        r["memory_ratio"] = r["peak_memory_mib"] / ref["peak_memory_mib"] if ref["peak_memory_mib"] else float("nan")
    return rows


TABLE_COLUMNS = ["setting", "records", "supervised_tokens", "flops", "wall_time_s", "peak_memory_mib", "accuracy",
                 "retention", "compute", "time_ratio", "memory_ratio"]


def write_tradeoff(rows: list[dict], out: Path) -> None:
    from cotdistill.report.plots import tradeoff_plot
    from cotdistill.report.tables import markdown_table, write_csv

    write_csv(rows, out / "tradeoff.csv", TABLE_COLUMNS)
    (out / "tradeoff.md").write_text("# Truncation trade-off\n\n" + markdown_table(rows, TABLE_COLUMNS))
    tradeoff_plot(rows, out / "tradeoff.png")


def run_sweep(base: TrainConfig, out: str | Path, *, lsps: list[float], windows: list[str] = (),
              sections: list[str] = (), eval_limit: int | None = None, max_new_tokens: int = WORLD_MAX_NEW_TOKENS,
              progress: bool = True) -> list[dict]:
    from cotdistill.training.loop import check_inputs

    check_inputs(base)  # a bad base config fails once, now, not once per setting after minutes of training
    out = Path(out)
    with output_lock(out):
        return _run_sweep_locked(base, out, lsps, windows, sections, eval_limit, max_new_tokens, progress)


def _run_sweep_locked(base: TrainConfig, out: Path, lsps, windows, sections, eval_limit, max_new_tokens,
                      progress) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    for point in sweep_points(list(lsps), list(windows), list(sections)):
        try:
            rows.append(run_point(base, point, out, eval_limit, max_new_tokens, progress))
        except SweepPointError as err:  # e.g. a truncation that leaves no supervised token: report, go on
            print(f"sweep: {err}", file=sys.stderr)
            failed.append({"setting": point.name, "error": str(err)})
    rows = tradeoff_table(rows)
    write_tradeoff(rows, out)
    if failed:
        (out / "failed.json").write_text(json.dumps(failed, indent=2))
    return rows
