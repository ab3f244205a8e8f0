"""``cotdistill select-experiment``: one student per selection method on equal-size selections, evaluated.

Every method picks one candidate per question (so selections have the same number of records); the student is
fine-tuned (SFT) on each selection with the same settings and seed, and evaluated on the same test set. Scores
are computed once and shared by all methods. Re-running reuses a (method, seed) cell's training and evaluation
where its selection, settings and models are those that made them. Every cell is scored as ``eval`` says (the
world's test split by default), and each method is compared with ``random`` of the same seed on those problems
(paired difference, its interval, McNemar's exact p); over seeds, mean ± sd and the interval of the mean.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from cotdistill.config import check_field_rules, save_config
from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.outputs import claim_output, eval_inputs, train_inputs
from cotdistill.provenance.classify import DEFAULT_MARGIN
from cotdistill.provenance.scoring import Context
from cotdistill.select.methods import Method, check_keep
from cotdistill.select.run import choose
from cotdistill.select.scores import score_candidates
from cotdistill.stages.reuse import content, record, reuse
from cotdistill.stages.setting import Checkpoint, train_and_evaluate
from cotdistill.training.config import TrainConfig

BASELINE = "random"  # every method is compared with the student trained on a random selection of the same size
CELL_COLUMNS = ["method", "seed", "selected", "accuracy", "ci95", "diff_vs_random", "diff_ci95", "p_vs_random",
                "supervised_tokens"]
SELECTION_NOTE = (
    "Every student answered the same test problems, so each method is compared with `random` problem by problem: "
    "per seed, `diff_vs_random` (accuracy minus random's) with its 95% interval `diff_ci95` and McNemar's exact "
    "`p_vs_random`. Over several seeds the method table gives the mean accuracy, its `sd` and the Student t "
    "interval of the mean (`ci95_low`, `ci95_high`), and the per-seed differences summarised the same way "
    "(`diff_sd`, `diff_ci95`); over one seed, that run's Wilson interval and paired figures. A method is better "
    "than random where the interval of its difference excludes 0 (and, per seed, p < 0.05).")


def sft_defaults() -> TrainConfig:
    """Each cell's fine-tuning: SFT on the selection, two epochs, no validation-driven checkpoints. The cell sets
    ``data.path``, ``seed`` and ``output_dir``; every other key may be changed under ``train:`` (``train.student``
    is the student that is scored and trained)."""
    return TrainConfig(teacher=None, loss={"distill_ratio": 0.0}, optim={"epochs": 2, "warmup_steps": 5},
                       eval_every=0, save_every=0, keep_best=False)


@dataclass
class SelectExperimentConfig:
    data: str = "world:candidates"  # a candidates file, or sample them from the world's teacher
    teacher: str = "world:teacher"  # scores the candidates with the student (train.student)
    methods: list[Method] = field(default_factory=lambda: ["teacher", "random", "grape", "longest", "shortest",
                                                         "local_naturalness"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    per_question: bool = True
    keep: float | None = None
    margin: float = DEFAULT_MARGIN  # the provenance β, as `select`'s
    context: Context = "own_template"  # as `select --context`
    out: str = "runs/select"
    train_config: str | None = None  # a training YAML: the base of train (keys under train: override it)
    train: TrainConfig = field(default_factory=sft_defaults)  # per cell: data.path, seed, output_dir are set
    eval: EvalSpec = field(default_factory=lambda: EvalSpec(limit=200))
    # final (unlike sweep's best): every cell's validation records are a share of its own method's selection, so a
    # checkpoint picked by them would mix the selection's quality with its validation set's difficulty; after the
    # same number of steps the cells differ only in their selection (sft_defaults keeps no best/ either).
    # best: each cell's best/ (set train.keep_best: true and train.eval_every), final/ where it kept none
    evaluate: Checkpoint = "final"
    world_questions: int = 200
    world_samples: int = 4
    world_temperature: float = 1.0
    world_sources: list[str] = field(default_factory=lambda: ["world:teacher"])  # models that write candidates
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {"beta": "margin", "student": "train.student",
                                                  "eval_limit": "eval.limit", "max_new_tokens": "eval.max_new_tokens",
                                                  "progress": "train.progress"}

    def __post_init__(self) -> None:
        check_field_rules(self)
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.keep is not None:
            check_keep(self.keep)


def _train_and_eval(cfg: SelectExperimentConfig, data_file: Path, cell: Path, seed: int) -> dict:
    config = replace(cfg.train, data=replace(cfg.train.data, path=str(data_file)), seed=seed)
    summary, results = train_and_evaluate(config, cfg.eval, cell, progress=cfg.train.progress,
                                          evaluate=cfg.evaluate)
    return {"accuracy": results["accuracy"], "ci95": results["ci95"], "supervised_tokens": summary["supervised_tokens"],
            "records": summary["records"]}


def run_experiment(cfg: SelectExperimentConfig) -> list[dict]:
    from cotdistill.evaluation.benchmarks import spec_items

    spec_items(cfg.eval)  # a bad benchmark is found before candidates are sampled and scored
    inputs = [cfg.data, cfg.teacher, *cfg.world_sources, *train_inputs(cfg.train), *eval_inputs(cfg.eval)]
    with claim_output(cfg.out, "--out (out)", inputs):
        return _run_experiment_locked(cfg)


def _run_experiment_locked(cfg: SelectExperimentConfig) -> list[dict]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    data = cfg.data
    if data == "world:candidates":
        from cotdistill.stages.world_candidates import sample_candidates

        data = str(out / "candidates.jsonl")
        key = {"sources": [[name, content(name)] for name in cfg.world_sources], "questions": cfg.world_questions,
               "samples": cfg.world_samples, "temperature": cfg.world_temperature}
        if not reuse(Path(data), key, "the sampled candidates"):
            info = sample_candidates(cfg.world_sources, data, questions=cfg.world_questions, samples=cfg.world_samples,
                                     temperature=cfg.world_temperature, progress=cfg.train.progress)
            (out / "candidates.json").write_text(json.dumps(info, indent=2))
            record(Path(data), key)
    loaded = load_records(data, on_error="skip")  # sampled candidates can be malformed: skip and count them
    records = loaded.records
    if loaded.skipped:
        (out / "skipped.json").write_text(json.dumps(loaded.skipped, indent=2))
    scores = score_candidates(records, cfg.teacher, cfg.train.student, out / "score-cache", margin=cfg.margin,
                              local_naturalness="local_naturalness" in cfg.methods, progress=cfg.train.progress,
                              context=cfg.context)
    cells = []
    for method in cfg.methods:
        for seed in cfg.seeds:
            # chosen again on every run (cheap, and fixed by the seed): a cell's training and evaluation are reused
            # only where its selection, settings and models are those that made them (stages.reuse)
            cell = cell_dir(out, method, seed)
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
            (cell / "cell.json").write_text(json.dumps(result))
            cells.append(result)
    from cotdistill.evaluation.paired import load_scores

    outcomes = {(c["method"], c["seed"]): load_scores(cell_dir(out, c["method"], c["seed"]) / "eval") for c in cells}
    cells = paired_with_baseline(cells, outcomes)
    table = summarise_cells(cells)
    (out / "cells.json").write_text(json.dumps(cells, indent=2))
    write_experiment_report(out, cells, table)
    return table


def _count_sources(records) -> dict[str, int]:
    return dict(Counter(str(r.metadata.get("source", "unknown")) for r in records))


def cell_dir(out: Path, method: str, seed: int) -> Path:
    return out / f"{method}-seed{seed}"


def paired_with_baseline(cells: list[dict], scores: dict[tuple[str, int], dict]) -> list[dict]:
    """Each cell against the random cell of its seed, on the same test problems (``scores``: (method, seed) ->
    per-problem scores): ``diff_vs_random`` with its 95% interval ``diff_ci95`` and ``p_vs_random`` (McNemar's exact
    p); None on the random cells and where no random cell of that seed was run."""
    from cotdistill.evaluation.paired import compare_scores

    for c in cells:
        base = scores.get((BASELINE, c["seed"]))
        if c["method"] == BASELINE or base is None:
            c.update(diff_vs_random=None, diff_ci95=None, p_vs_random=None)
            continue
        paired = compare_scores(scores[(c["method"], c["seed"])], base)
        c.update(diff_vs_random=paired.difference, diff_ci95=list(paired.ci95), p_vs_random=paired.p_value)
    return cells


def summarise_cells(cells: list[dict]) -> list[dict]:
    """One row per method (cells already paired with :func:`paired_with_baseline`). Over several seeds: the mean
    accuracy, its sd and the Student t interval of the mean, and the per-seed differences from random summarised
    the same way (each seed's McNemar p is in the per-seed table). Over one seed: that run's Wilson interval, and
    its paired difference with interval and p."""
    by_method: dict[str, list[dict]] = {}
    for c in cells:
        by_method.setdefault(c["method"], []).append(c)
    table = []
    for method, rows in by_method.items():
        table.append({"method": method, "seeds": len(rows), "records": rows[0]["selected"],
                      "tokens": sum(r["supervised_tokens"] for r in rows) / len(rows), **_accuracy_summary(rows),
                      **_difference_summary(rows),
                      "selected_correct_share": sum(r["selected_correct_share"] for r in rows) / len(rows),
                      "teacher_actions_mean": sum(r["teacher_actions_mean"] for r in rows) / len(rows)})
    return table


def _accuracy_summary(rows: list[dict]) -> dict:
    if len(rows) == 1:  # one seed has no spread: its test-set interval is the only uncertainty measured
        return {"accuracy": rows[0]["accuracy"], "sd": None, "ci95_low": rows[0]["ci95"][0],
                "ci95_high": rows[0]["ci95"][1]}
    from cotdistill.evaluation.paired import seed_summary

    summary = seed_summary([r["accuracy"] for r in rows])
    return {"accuracy": summary["mean"], "sd": summary["sd"], "ci95_low": summary["ci95"][0],
            "ci95_high": summary["ci95"][1]}


def _difference_summary(rows: list[dict]) -> dict:
    paired = [r for r in rows if r["diff_vs_random"] is not None]
    if len(paired) <= 1:  # random itself, no random cell, or one seed: that seed's paired figures (or none)
        one = paired[0] if paired else {"diff_vs_random": None, "diff_ci95": None, "p_vs_random": None}
        return {"diff_vs_random": one["diff_vs_random"], "diff_sd": None, "diff_ci95": one["diff_ci95"],
                "p_vs_random": one["p_vs_random"]}
    from cotdistill.evaluation.paired import seed_summary

    summary = seed_summary([r["diff_vs_random"] for r in paired])
    return {"diff_vs_random": summary["mean"], "diff_sd": summary["sd"], "diff_ci95": list(summary["ci95"]),
            "p_vs_random": None}


def write_experiment_report(out: Path, cells: list[dict], table: list[dict]) -> None:
    from cotdistill.report.plots import bar_plot
    from cotdistill.report.tables import markdown_table, write_csv

    write_csv(table, out / "selection.csv")
    (out / "selection.md").write_text("# Teacher-guided selection vs baselines\n\n" + SELECTION_NOTE + "\n\n"
                                      + markdown_table(table) + "\nPer seed:\n\n"
                                      + markdown_table(cells, CELL_COLUMNS))
    bar_plot([r["method"] for r in table], [r["accuracy"] for r in table],
             [(r["ci95_low"], r["ci95_high"]) for r in table], out / "selection.png",
             ylabel="test accuracy (95% interval)", title="student accuracy by selection method")
