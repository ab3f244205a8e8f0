"""``cotdistill sweep``: train and evaluate one student per truncation setting, then tabulate cost against quality.

Each point lives in ``OUT/<name>/`` with its ``train/run_summary.json`` and ``eval/results.json``; a half whose
files are there, made with the settings, data and models asked for now (``stages.reuse``), is not run again, and
one made otherwise is. The table has, per setting: supervised tokens, FLOPs, wall time, peak memory,
accuracy, retention = accuracy / accuracy at the reference (LSP 1.0) and compute = FLOPs / reference FLOPs; and,
paired on the problems both answered (each point's ``eval/samples.jsonl``), the difference from the reference with
its 95% interval, McNemar's exact p and the retention's bootstrap interval. Every point is evaluated as ``eval``
says (the world's test split by default; ``eval.bench=gsm8k eval.data=FILE`` …).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.config import Range, check_field_rules, from_dict, merge, to_dict
from cotdistill.data.encode import LSP, SECTION_ALIASES, EncodeConfig, Window
from cotdistill.evaluation.spec import EvalSpec
from cotdistill.outputs import claim_output, eval_inputs, train_inputs
from cotdistill.report.tables import TRADEOFF_COLUMNS
from cotdistill.stages.setting import Checkpoint, SettingError, chosen_checkpoint, train_and_evaluate
from cotdistill.training.config import TrainConfig


@dataclass
class SweepConfig:
    train_config: str | None = None  # a training YAML: the base of `train` (keys under train: override it)
    train: TrainConfig = field(default_factory=TrainConfig)  # every point trains with this, its encode changed
    eval: EvalSpec = field(default_factory=EvalSpec)  # every point is scored on this benchmark
    lsps: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 1.0], metadata={
        "help": "1.0: the full-sequence reference", "range": LSP})
    windows: list[Window] = field(default_factory=list)  # each at LSP 0.5
    sections: list[str] = field(default_factory=list)  # supervised sections, e.g. cotAns, cot, ans (at LSP 1.0)
    # truncations that keep the ending, each at ending_lsp: answer (lsp_keep_answer), tail:K (lsp_keep_tail, the
    # last K tokens), whole:S (lsp with full_share S: that share of records whole)
    endings: list[str] = field(default_factory=list)
    # on-policy points (loss.on_policy), each with train.rollout's settings: after:K (the ending_lsp point's model,
    # then K on-policy steps on full-length rollouts), after:K:lead (rollouts cut at that LSP's lead budget),
    # mix:L (the ending_lsp point trained with a share L of its steps on-policy), alone:K (the original student,
    # K on-policy steps). after/alone train reverse KL alone (distill_ratio 1), the usual on-policy objective; mix
    # keeps train.loss, so its other steps are the ending_lsp point's
    on_policy: list[str] = field(default_factory=list)
    ending_lsp: float = field(default=0.5, metadata={"range": Range(0, 1, low_open=True, high_open=True)})
    # best: each point's best/ checkpoint (lowest train.best_metric on validation: the paper's choice), final/ where
    # the run kept none; final: the last step's model
    evaluate: Checkpoint = "best"
    out: str = "runs/sweep"

    def __post_init__(self) -> None:
        check_field_rules(self)
        unknown = [s for s in self.sections if s not in SECTION_ALIASES]
        if unknown:
            raise ValueError(f"sections must be among {sorted(SECTION_ALIASES)}; found {unknown}")
        for ending in self.endings:
            ending_encode(ending, self.ending_lsp)
        for spec in self.on_policy:
            on_policy_point(spec, self.ending_lsp, EncodeConfig())


REFERENCE = "lsp1"  # the point every other is compared with: LSP 1.0, every record whole


@dataclass
class SweepPoint:
    name: str  # the point's folder and its key in tables: lsp0.5, ending-whole0.1
    encode: dict  # overrides of TrainConfig.encode
    label: str = ""  # how a sentence names it: "LSP 0.5, 10% of records whole"
    train: dict = field(default_factory=dict)  # overrides of the rest of TrainConfig (an on-policy point's loss)
    after: str | None = None  # the point whose trained model this one trains on; its cost is added to this one's


def lsp_text(lsp: float) -> str:
    """0.5 -> "0.5", 1 -> "1.0", 0.25 -> "0.25": as the papers write an LSP."""
    return f"{lsp:.1f}" if lsp == round(lsp, 1) else f"{lsp:g}"


def ending_label(overrides: dict) -> str:
    """How a sentence names an ending-keeping point, read from its encode overrides (``ending_encode``'s)."""
    if overrides["truncation"] == "lsp_keep_answer":
        kept = "the answer kept whole"
    elif overrides["truncation"] == "lsp_keep_tail":
        kept = f"the last {overrides['keep_tail']} tokens kept"
    else:
        kept = f"{round(overrides['full_share'] * 100, 6):g}% of records whole"
    return f"LSP {lsp_text(overrides['lsp'])}, {kept}"


def ending_encode(ending: str, lsp: float) -> dict:
    """The encode overrides of an ending-keeping point, ``answer``, ``tail:K`` or ``whole:S``, checked as a config."""
    kind, _, value = ending.partition(":")
    try:
        if kind == "answer" and not value:
            overrides = {"truncation": "lsp_keep_answer", "lsp": lsp}
        elif kind == "tail":
            overrides = {"truncation": "lsp_keep_tail", "lsp": lsp, "keep_tail": int(value)}
        elif kind == "whole":
            overrides = {"truncation": "lsp", "lsp": lsp, "full_share": float(value)}
        else:
            raise ValueError("unknown kind")
        EncodeConfig(**overrides)
    except ValueError as err:
        raise ValueError(f"endings must be answer, tail:K (the last K tokens) or whole:S (a share of records in "
                         f"(0, 1)); {ending!r}: {err}") from None
    return overrides


def on_policy_point(spec: str, lsp: float, base: EncodeConfig) -> SweepPoint:
    """The point of an on-policy spec (``SweepConfig.on_policy``), checked: ``after:K``, ``after:K:lead``,
    ``mix:L`` or ``alone:K``."""
    kind, _, rest = spec.partition(":")
    value, _, variant = rest.partition(":")
    pure = {"loss": {"distill_ratio": 1.0, "kind": "reverse_kl"}}
    try:
        if kind == "mix" and not variant and 0 < float(value) <= 1:
            return SweepPoint(f"onpolicy-mix{float(value):g}", dict(base.at_lsp(lsp).__dict__),
                              f"LSP {lsp_text(lsp)}, {float(value):.0%} of steps on-policy",
                              {"loss": {"on_policy": float(value)}})
        steps = int(value)
        if kind not in ("after", "alone") or steps < 1 or variant not in ("", "lead") or (kind, variant) == (
                "alone", "lead"):
            raise ValueError("unknown form")
    except ValueError as err:
        raise ValueError(f"on_policy points are after:K, after:K:lead, mix:L (a share in (0, 1]) or alone:K (K "
                         f"steps >= 1); {spec!r}: {err}") from None
    train = {"loss": {**pure["loss"], "on_policy": 1.0}, "optim": {"max_steps": steps,
                                                                    "warmup_steps": max(1, steps // 20)}}
    if kind == "alone":
        return SweepPoint(f"onpolicy-alone{steps}", dict(base.untruncated().__dict__),
                          f"on-policy alone, {steps} steps", train)
    lead = variant == "lead"
    encode = base.at_lsp(lsp) if lead else base.untruncated()  # the rollouts' lead budget follows encode.lsp
    cut = " (rollouts cut at the lead)" if lead else ""
    return SweepPoint(f"onpolicy-after{steps}{'-lead' if lead else ''}", dict(encode.__dict__),
                      f"LSP {lsp_text(lsp)}, then {steps} on-policy steps{cut}", train, after=f"lsp{lsp:g}")


def sweep_points(lsps: list[float], windows: list[str], sections: list[str], endings: list[str] = (),
                 ending_lsp: float = 0.5, base: EncodeConfig | None = None,
                 on_policy: list[str] = ()) -> list[SweepPoint]:
    """LSP points (lsp=1.0 is the full-sequence reference: every record whole), window points, section-allocation
    points, ending-keeping points and on-policy points (last: an ``after:`` point trains on its LSP point's model,
    which is added where the LSPs lack it). An LSP point keeps ``base``'s truncation where it spends an LSP
    budget."""
    base = base or EncodeConfig()
    lsps = list(lsps) + ([ending_lsp] if any(s.startswith("after:") for s in on_policy) and ending_lsp not in lsps
                         else [])
    points = [SweepPoint(f"lsp{lsp:g}", dict(base.at_lsp(lsp).__dict__), f"LSP {lsp_text(lsp)}") for lsp in lsps]
    for w in windows:
        points.append(SweepPoint(f"window-{w}", {"truncation": "window", "window": w, "lsp": 0.5},
                                 f"the {w} window of LSP 0.5"))
    for s in sections:
        points.append(SweepPoint(f"sections-{s}", {"sections": s}, f"sections {s}"))
    for ending in endings:
        overrides = ending_encode(ending, ending_lsp)
        points.append(SweepPoint(f"ending-{ending.replace(':', '')}", overrides, ending_label(overrides)))
    points += [on_policy_point(spec, ending_lsp, base) for spec in on_policy]
    if not any(p.name == REFERENCE for p in points):  # retention needs the full-sequence reference
        points.insert(0, SweepPoint(REFERENCE, dict(base.untruncated().__dict__), "LSP 1.0"))
    return points


def run_point(cfg: SweepConfig, point: SweepPoint, out: Path) -> dict:
    overrides = merge({"encode": point.encode}, point.train)
    before = None
    if point.after is not None:  # trains on the model of an earlier point, and costs what it cost as well
        summary_file = out / point.after / "train" / "run_summary.json"
        if not summary_file.is_file():
            raise SettingError(f"{point.name} trains on the model of {point.after}, which did not train")
        before = json.loads(summary_file.read_text())
        checkpoint, _ = chosen_checkpoint(out / point.after / "train", before, cfg.evaluate)
        overrides["student"] = str(out / point.after / "train" / checkpoint)
    config = from_dict(TrainConfig, merge(to_dict(cfg.train), overrides))
    summary, results = train_and_evaluate(config, cfg.eval, out / point.name, in_subprocess=True,
                                          progress=cfg.train.progress, evaluate=cfg.evaluate)
    cost = {key: summary[key] + (before[key] if before else 0)
            for key in ("processed_tokens", "supervised_tokens", "flops", "wall_time_s")}
    peak = max(summary["peak_memory_bytes"], before["peak_memory_bytes"] if before else 0)
    return {"setting": point.name, "label": point.label, "records": summary["examples"],
            "tokens": cost["processed_tokens"], "supervised_tokens": cost["supervised_tokens"],
            "flops": cost["flops"], "sampling_flops": summary.get("sampling_flops", 0),
            "wall_time_s": cost["wall_time_s"], "peak_memory_mib": peak / 2**20,
            "bench": results["bench"], "accuracy": results["accuracy"], "ci95_low": results["ci95"][0],
            "ci95_high": results["ci95"][1], "at_limit": results["truncated_responses"],
            "endings": results.get("endings")}  # results.json written before endings were counted lacks them


def tradeoff_table(rows: list[dict], reference: str = REFERENCE) -> list[dict]:
    ref = next(r for r in rows if r["setting"] == reference)
    for r in rows:
        r["retention"] = r["accuracy"] / ref["accuracy"] if ref["accuracy"] > 0 else float("nan")
        r["compute"] = r["flops"] / ref["flops"]
        r["time_ratio"] = r["wall_time_s"] / ref["wall_time_s"]
        r["memory_ratio"] = r["peak_memory_mib"] / ref["peak_memory_mib"] if ref["peak_memory_mib"] else float("nan")
    return rows


def paired_with_reference(rows: list[dict], scores: dict[str, dict], reference: str = REFERENCE) -> list[dict]:
    """Each row against the reference on the same problems (``scores``: setting -> per-problem scores):
    ``diff_vs_ref`` (accuracy minus the reference's) with its 95% interval ``diff_ci95``, ``p_vs_ref`` (McNemar's
    exact p) and ``retention_ci95`` (paired bootstrap); None on the reference's own row. Both models answered the
    same problems, so the paired figures see a difference that two overlapping Wilson intervals hide."""
    from cotdistill.evaluation.paired import compare_scores, retention_interval

    ref = scores[reference]
    for r in rows:
        if r["setting"] == reference:
            r.update(diff_vs_ref=None, diff_ci95=None, p_vs_ref=None, retention_ci95=None)
            continue
        paired = compare_scores(scores[r["setting"]], ref)
        _, low, high = retention_interval(scores[r["setting"]], ref)
        r.update(diff_vs_ref=paired.difference, diff_ci95=list(paired.ci95), p_vs_ref=paired.p_value,
                 retention_ci95=[low, high])
    return rows


def write_tradeoff(rows: list[dict], out: Path) -> None:
    from cotdistill.report.plots import tradeoff_plot
    from cotdistill.report.tables import markdown_table, write_csv

    write_csv(rows, out / "tradeoff.csv", TRADEOFF_COLUMNS)
    (out / "tradeoff.md").write_text("# Truncation trade-off\n\n" + markdown_table(rows, TRADEOFF_COLUMNS))
    tradeoff_plot(rows, out / "tradeoff.png")


def run_sweep(cfg: SweepConfig) -> list[dict]:
    from cotdistill.evaluation.benchmarks import spec_items
    from cotdistill.training.loop import check_inputs

    check_inputs(cfg.train)  # a bad base config fails once, now, not once per setting after minutes of training
    spec_items(cfg.eval)  # and so does a bad benchmark, before the first point trains
    out = Path(cfg.out)
    with claim_output(out, "--out (out)", [*train_inputs(cfg.train), *eval_inputs(cfg.eval)]):
        return _run_sweep_locked(cfg, out)


def _run_sweep_locked(cfg: SweepConfig, out: Path) -> list[dict]:
    from cotdistill.config import save_config
    from cotdistill.evaluation.paired import load_scores

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    rows, failed = [], []
    for point in sweep_points(list(cfg.lsps), list(cfg.windows), list(cfg.sections), list(cfg.endings),
                              cfg.ending_lsp, cfg.train.encode, list(cfg.on_policy)):
        try:
            rows.append(run_point(cfg, point, out))
        except SettingError as err:  # e.g. a truncation that leaves no supervised token: report, go on
            print(f"sweep: {err}", file=sys.stderr)
            failed.append({"setting": point.name, "error": str(err)})
    rows = tradeoff_table(rows)
    rows = paired_with_reference(rows, {r["setting"]: load_scores(out / r["setting"] / "eval") for r in rows})
    write_tradeoff(rows, out)
    if failed:
        (out / "failed.json").write_text(json.dumps(failed, indent=2))
    return rows
