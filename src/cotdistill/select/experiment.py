"""``cotdistill select-experiment``: one student per selection method on equal-size selections, evaluated.

Every method picks one candidate per question (so selections have the same number of records); the student is
fine-tuned (SFT) on each selection with the same settings and seed, and evaluated on the same test set. Scores
are computed once and shared by all methods. Re-running skips finished (method, seed) cells.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.config import from_dict, merge, save_config
from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.outputs import output_lock
from cotdistill.select.methods import METHODS
from cotdistill.select.run import choose
from cotdistill.select.scores import score_candidates
from cotdistill.world import WORLD_MAX_NEW_TOKENS


@dataclass
class SelectExperimentConfig:
    data: str = "world:candidates"  # a candidates file, or sample them from the world's teacher
    teacher: str = "world:teacher"
    student: str = "world:student"
    methods: list[str] = field(default_factory=lambda: ["teacher", "random", "grape", "longest", "shortest",
                                                         "local_naturalness"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    per_question: bool = True
    keep: float | None = None
    beta: float = 0.1
    context: str = "own_template"  # own_template | shared_text, as `select --context`
    out: str = "runs/select"
    train: dict = field(default_factory=dict)  # TrainConfig overrides (nested dict)
    eval_limit: int = 200
    max_new_tokens: int = WORLD_MAX_NEW_TOKENS
    world_questions: int = 200
    world_samples: int = 4
    world_temperature: float = 1.0
    world_sources: list[str] = field(default_factory=lambda: ["world:teacher"])  # models that write candidates
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods must be among {METHODS}, got {unknown}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")


def _train_and_eval(cfg: SelectExperimentConfig, data_file: Path, cell: Path, seed: int) -> dict:
    from cotdistill.evaluation.benchmarks import evaluate_model
    from cotdistill.training.config import TrainConfig
    from cotdistill.training.loop import train

    base = {"student": cfg.student, "teacher": None, "output_dir": str(cell / "train"),
            "data": {"path": str(data_file), "val_fraction": 0.05}, "loss": {"distill_ratio": 0.0},
            "optim": {"lr": 5e-4, "batch_size": 8, "epochs": 2, "warmup_steps": 5}, "seed": seed,
            "eval_every": 0, "save_every": 0, "keep_best": False, "progress": cfg.progress}
    summary = train(from_dict(TrainConfig, merge(base, cfg.train)))
    results = evaluate_model(str(cell / "train" / "final"), "world", limit=cfg.eval_limit, out_dir=cell / "eval",
                             max_new_tokens=cfg.max_new_tokens, progress=cfg.progress)
    return {"accuracy": results["accuracy"], "ci95": results["ci95"], "supervised_tokens": summary["supervised_tokens"],
            "records": summary["records"]}


def run_experiment(cfg: SelectExperimentConfig) -> list[dict]:
    with output_lock(cfg.out):
        return _run_experiment_locked(cfg)


def _run_experiment_locked(cfg: SelectExperimentConfig) -> list[dict]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    data = cfg.data
    if data == "world:candidates":
        from cotdistill.world.candidates import sample_candidates

        data = str(out / "candidates.jsonl")
        if not Path(data).exists():
            info = sample_candidates(cfg.world_sources, data, questions=cfg.world_questions, samples=cfg.world_samples,
                                     temperature=cfg.world_temperature, progress=cfg.progress)
            (out / "candidates.json").write_text(json.dumps(info, indent=2))
    loaded = load_records(data, on_error="skip")  # sampled candidates can be malformed: skip and count them
    records = loaded.records
    if loaded.skipped:
        (out / "skipped.json").write_text(json.dumps(loaded.skipped, indent=2))
    scores = score_candidates(records, cfg.teacher, cfg.student, out / "score-cache", beta=cfg.beta,
                              local_naturalness="local_naturalness" in cfg.methods, progress=cfg.progress,
                              context=cfg.context)
    cells = []
    for method in cfg.methods:
        for seed in cfg.seeds:
            cell = out / f"{method}-seed{seed}"
            done = cell / "cell.json"
            if done.exists():
                cells.append(json.loads(done.read_text()))
                continue
            chosen = choose(records, scores, method, per_question=cfg.per_question, keep=cfg.keep, seed=seed)
            cell.mkdir(parents=True, exist_ok=True)
            selected = [records[i] for i in chosen]
            write_jsonl(selected, cell / "selected.jsonl", loaded.format)
            result = {"method": method, "seed": seed, "selected": len(selected),
                      "selected_correct_share": (sum(bool(r.metadata.get("correct")) for r in selected)
                                                 / max(len(selected), 1)),
                      "teacher_actions_mean": sum(scores[i].teacher_actions for i in chosen) / max(len(chosen), 1),
                      "selected_sources": _count_sources(selected),
                      **_train_and_eval(cfg, cell / "selected.jsonl", cell, seed)}
            done.write_text(json.dumps(result))
            cells.append(result)
    table = summarise_cells(cells)
    (out / "cells.json").write_text(json.dumps(cells, indent=2))
    write_experiment_report(out, cells, table)
    return table


def _count_sources(records) -> dict[str, int]:
    return dict(Counter(str(r.metadata.get("source", "unknown")) for r in records))


def summarise_cells(cells: list[dict]) -> list[dict]:
    by_method: dict[str, list[dict]] = {}
    for c in cells:
        by_method.setdefault(c["method"], []).append(c)
    table = []
    for method, rows in by_method.items():
        accs = [r["accuracy"] for r in rows]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        table.append({"method": method, "seeds": len(rows), "records": rows[0]["selected"],
                      "tokens": sum(r["supervised_tokens"] for r in rows) / len(rows), "accuracy": mean,
                      "std": std, "ci95_low": min(r["ci95"][0] for r in rows),
                      "ci95_high": max(r["ci95"][1] for r in rows),
                      "selected_correct_share": sum(r["selected_correct_share"] for r in rows) / len(rows),
                      "teacher_actions_mean": sum(r["teacher_actions_mean"] for r in rows) / len(rows)})
    return table


def write_experiment_report(out: Path, cells: list[dict], table: list[dict]) -> None:
    from cotdistill.report.plots import bar_plot
    from cotdistill.report.tables import markdown_table, write_csv

    write_csv(table, out / "selection.csv")
    (out / "selection.md").write_text("# Teacher-guided selection vs baselines\n\n" + markdown_table(table)
                                      + "\nPer seed:\n\n" + markdown_table(cells, ["method", "seed", "selected",
                                                                                   "accuracy", "supervised_tokens"]))
    bar_plot([r["method"] for r in table], [r["accuracy"] for r in table],
             [(r["ci95_low"], r["ci95_high"]) for r in table], out / "selection.png",
             ylabel="test accuracy (95% interval)", title="student accuracy by selection method")
