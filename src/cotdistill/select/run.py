"""``cotdistill select``: score candidates once, select with a method, write records + ``scores.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from cotdistill.config import ConfigError
from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.data.records import ReasoningRecord
from cotdistill.provenance.scoring import CONTEXTS
from cotdistill.select.methods import METHODS, method_scores, select_per_dataset, select_per_question
from cotdistill.select.scores import CandidateScore, score_candidates, score_rows


def question_key(record: ReasoningRecord) -> str:
    """Candidates of one question share ``metadata.question_id`` when present, else the prompt text."""
    return str(record.metadata.get("question_id", record.prompt))


def choose(records: list[ReasoningRecord], scores: list[CandidateScore], method: str, *, per_question: bool,
           keep: float | None, seed: int = 0) -> list[int]:
    """Indices of the selected records: the best candidate per question, or the top ``keep`` overall."""
    values = method_scores(method, scores, seed)
    if per_question:
        chosen = select_per_question([question_key(r) for r in records], values, seed)
        if keep is not None:  # then keep the top of the per-question winners
            sub = select_per_dataset([values[i] for i in chosen], keep, seed)
            chosen = [chosen[i] for i in sub]
        return chosen
    if keep is None:
        raise ValueError("per-dataset selection needs keep (a fraction in (0, 1] or a count)")
    return select_per_dataset(values, keep, seed)


def check_select_arguments(data: str, method: str, out: Path, keep: float | None = None) -> None:
    """Refuse, before any model is loaded, what would fail after the scoring or destroy the input: an unknown
    method, or an output (or its scores file) that is the dataset itself (``--out in.jsonl`` overwrote it)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}, got {method!r}")
    if keep is not None and keep <= 0:
        raise ConfigError(f"--keep must be a fraction in (0, 1] or a count > 1, got {keep:g}")
    if not Path(data).exists():
        raise ConfigError(f"{data}: no such file or dataset directory")
    source = Path(data)
    for written in (out, out.with_name(out.stem + ".scores.jsonl")):
        if source.exists() and written.resolve() == source.resolve():
            raise ConfigError(f"--out would overwrite the input {data}: write the selection to another file")


def select_records(data: str, teacher: str, student: str, method: str, out: str | Path, *, per_question: bool,
                   keep: float | None = None, cache_dir: str | Path | None = None, beta: float = 0.1,
                   seed: int = 0, batch_size: int = 8, device: str = "auto", progress: bool = True,
                   context: str = "own_template") -> dict:
    from cotdistill.distributed import init_distributed
    from cotdistill.models import pick_device

    out = Path(out)
    check_select_arguments(data, method, out, keep)
    if context not in CONTEXTS:
        raise ConfigError(f"context must be one of {CONTEXTS}, got {context!r}")
    is_main = init_distributed(pick_device(device).type).is_main  # under torchrun: scoring is split by rank
    loaded = load_records(data)
    records = loaded.records
    cache_dir = Path(cache_dir) if cache_dir else out.parent / f"{out.stem}.score-cache"
    scores = score_candidates(records, teacher, student, cache_dir, beta=beta, batch_size=batch_size, device=device,
                              local_naturalness=method == "local_naturalness", progress=progress, context=context)
    chosen = choose(records, scores, method, per_question=per_question, keep=keep, seed=seed)
    info = {"method": method, "candidates": len(records), "selected": len(chosen), "out": str(out),
            "format": loaded.format, "context": context}
    if not is_main:
        return info
    write_jsonl([records[i] for i in chosen], out, loaded.format)
    keep_set, values = set(chosen), method_scores(method, scores, seed)
    with open(out.with_name(out.stem + ".scores.jsonl"), "w") as fh:
        for i, row in enumerate(score_rows(scores)):
            fh.write(json.dumps({"index": i, "selected": i in keep_set, "method_score": values[i], **row}) + "\n")
    return info
