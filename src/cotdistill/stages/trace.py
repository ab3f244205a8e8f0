"""``cotdistill trace``: score each generated action under teacher, student and distilled student, classify it,
and report the category mix overall, per benchmark and for correct vs wrong responses.

Resumable: each model's scores are appended to ``scores-<model>.jsonl`` as they are computed; a re-run loads
them and scores only what is missing. Models are loaded one at a time. Under ``torchrun`` the scoring is split by
rank and rank 0 writes the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cotdistill.config import ConfigError
from cotdistill.outputs import claim_output
from cotdistill.provenance.actions import Action, split_actions
from cotdistill.provenance.scoring import score_with_cache, shared_contexts
from cotdistill.provenance.trace import MODEL_ROLES, TraceConfig, build_action_rows, load_samples, summarise


def score_role(role: str, model_path: str, samples: list[dict], actions: list[list[Action]], out: Path,
               config: TraceConfig, progress: bool,
               contexts_of: tuple[list[str], bool] | None = None) -> list[list[list[float]]]:
    """Per sample, [[n_tokens, logprob_sum] per action] under one model; stored in ``scores-<role>.jsonl``."""
    keys = [str(i) for i in range(len(samples))]
    contexts, raw = contexts_of if contexts_of is not None else ([s["prompt"] for s in samples], False)
    done = score_with_cache(model_path, keys, contexts, [s["response"] for s in samples],
                            actions, out / f"scores-{role}.jsonl", batch_size=config.batch_size,
                            device=config.device, progress=progress, desc=f"score {role}", raw_context=raw)
    return [done[k] for k in keys]


def run_trace(config: TraceConfig, *, progress: bool = True) -> dict:
    """Score, classify and report; returns the summary (also written to ``config.out``)."""
    from cotdistill.distributed import init_distributed
    from cotdistill.models import model_source, pick_device

    missing = [f"{key} (--{key})" for key in ("samples", "teacher", "student", "distilled")
               if not getattr(config, key)]
    if missing:
        raise ConfigError(f"trace needs {', '.join(missing)}: the samples.jsonl of `cotdistill eval`, the teacher, "
                          "the original student and the distilled student that wrote the samples")
    paths = {"teacher": config.teacher, "student": config.student, "distilled": config.distilled}
    for role, name in paths.items():  # a typo in a model name, an empty folder are found before any scoring
        model_source(name, role)
    is_main = init_distributed(pick_device(config.device).type).is_main  # under torchrun: scoring is split by rank
    out = Path(config.out)
    # two traces into one folder would interleave their score files
    with claim_output(out, "--out (out)", [config.samples, *paths.values()], enabled=is_main):
        out.mkdir(parents=True, exist_ok=True)  # every rank writes its scores there
        return _trace_locked(config, paths, out, is_main, progress)


def _trace_locked(config: TraceConfig, paths: dict[str, str], out: Path, is_main: bool, progress: bool) -> dict:
    samples = load_samples(config.samples, config.limit)
    actions = [split_actions(s["response"], config.unit) for s in samples]
    contexts = shared_contexts([s["prompt"] for s in samples], config.distilled, config.context)
    scores = {role: score_role(role, paths[role], samples, actions, out, config, progress, contexts)
              for role in MODEL_ROLES}
    style_fn = None
    if config.world_styles:
        from cotdistill.world import style_of as style_fn
    rows = build_action_rows(samples, actions, scores, config, style_fn)
    summary = summarise(rows, config)
    summary["models"], summary["context"] = paths, config.context
    if not is_main:
        return summary
    with open(out / "actions.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    from cotdistill.report.provenance import write_trace_report

    write_trace_report(out, samples, rows, summary)
    return summary


@dataclass
class CorrelateConfig:
    pairs: list[str] = field(default_factory=list)  # TRACE_DIR:RESULTS_JSON for each distilled model


def run_correlate(config: CorrelateConfig) -> dict:
    """Teacher-originated share against accuracy across distilled models (table + Spearman ρ)."""
    from cotdistill.provenance.correlate import correlate_dirs

    pairs = []
    for text in config.pairs:
        if ":" not in text:
            raise ConfigError(f"pairs: expected TRACE_DIR:RESULTS_JSON, found {text!r}")
        pairs.append(tuple(text.split(":", 1)))
    if not pairs:
        raise ConfigError("pairs: give at least one TRACE_DIR:RESULTS_JSON")
    return correlate_dirs(pairs)
