"""Choosing records from their scores: the best candidate per question, or the top of the whole dataset."""

from __future__ import annotations

from pathlib import Path

from cotdistill.config import ConfigError
from cotdistill.data.records import ReasoningRecord
from cotdistill.select.methods import METHODS, method_scores, select_per_dataset, select_per_question
from cotdistill.select.scores import CandidateScore


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


def check_select_arguments(data: str, method: str, keep: float | None = None) -> None:
    """Refuse, before any model is loaded, what would fail after the scoring: an unknown method, a missing dataset.
    (An output that would write over the dataset is the output guard's: ``cotdistill.outputs.check_output``.)"""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}, got {method!r}")
    if keep is not None and keep <= 0:
        raise ConfigError(f"--keep (keep) must be a fraction in (0, 1] or a count > 1, got {keep:g}")
    if not Path(data).exists():
        raise ConfigError(f"{data}: no such file or dataset directory")
