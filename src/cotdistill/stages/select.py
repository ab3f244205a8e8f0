"""``cotdistill select``: score candidates once, select with a method, write the records and ``*.scores.jsonl``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cotdistill.config import ConfigError, check_field_rules
from cotdistill.data.formats import load_records, write_jsonl
from cotdistill.outputs import check_output, claim_output
from cotdistill.provenance.classify import DEFAULT_MARGIN
from cotdistill.provenance.scoring import Context
from cotdistill.select.methods import Method, check_keep, keep_count, method_scores
from cotdistill.select.run import check_select_arguments, choose, question_key
from cotdistill.select.scores import score_candidates, score_rows


@dataclass
class SelectConfig:
    data: str = ""  # candidate records (several per question share metadata.question_id or the prompt)
    teacher: str = ""  # path, hub id or world:teacher
    student: str = ""  # the student the selection is for
    method: Method = "teacher"
    per_question: bool = False  # the best candidate of each question
    keep: float | None = None  # a fraction (<= 1) or count (> 1) of the dataset (of the winners with per_question)
    out: str = ""  # the selected records (JSONL); their scores go beside it as <out>.scores.jsonl
    cache_dir: str | None = None  # per-model scores, reused by later selections (default: beside out)
    margin: float = DEFAULT_MARGIN  # the provenance β: a teacher-originated action beats the student by this
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    context: Context = "own_template"  # shared_text: the student's rendering of the question for both models
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {"beta": "margin"}

    def __post_init__(self) -> None:
        check_field_rules(self)
        if self.keep is not None:
            check_keep(self.keep)


def scores_file(out: Path) -> Path:
    """The scores of every candidate, written beside the selection ``out``."""
    return out.with_name(out.stem + ".scores.jsonl")


def select_records(config: SelectConfig, *, progress: bool = True) -> dict:
    from cotdistill.distributed import init_distributed
    from cotdistill.models import pick_device

    missing = [name for name, given in (("DATA", config.data), ("--teacher", config.teacher),
                                        ("--student", config.student), ("--out", config.out)) if not given]
    if missing:
        raise ConfigError(f"select needs {', '.join(missing)} (data, teacher, student, out): the candidate records, "
                          "the two models that score them and the file the selection goes to")
    if not config.per_question and config.keep is None:
        raise ConfigError("select needs per_question: true (--per-question) or keep (--keep) or both")
    out = Path(config.out)
    check_select_arguments(config.data, config.method, config.keep)
    inputs = [config.data, config.teacher, config.student]
    for written in (out, scores_file(out)):  # refused before scoring: the input itself, or a file inside its folder
        check_output(written, "--out (out)", inputs, is_file=True)
    is_main = init_distributed(pick_device(config.device).type).is_main  # under torchrun: scoring is split by rank
    cache_dir = Path(config.cache_dir) if config.cache_dir else out.parent / f"{out.stem}.score-cache"
    # two selections filling one score cache would interleave it
    with claim_output(cache_dir, "--cache-dir (cache_dir)", inputs, enabled=is_main):
        return _select_locked(config, out, cache_dir, is_main, progress)


def _check_keep_fits(keep: float, records: list, per_question: bool) -> None:
    """A count above the candidates (or, per question, the questions) failed only after the scoring."""
    total = len({question_key(r) for r in records}) if per_question else len(records)
    try:
        keep_count(total, keep)
    except ValueError as err:
        raise ConfigError(f"--keep (keep): {err}{' (one winner per question)' if per_question else ''}") from None


def _select_locked(config: SelectConfig, out: Path, cache_dir: Path, is_main: bool, progress: bool) -> dict:
    loaded = load_records(config.data)
    records = loaded.records
    if config.keep is not None:
        _check_keep_fits(config.keep, records, config.per_question)
    scores = score_candidates(records, config.teacher, config.student, cache_dir, margin=config.margin,
                              batch_size=config.batch_size, device=config.device,
                              local_naturalness=config.method == "local_naturalness", progress=progress,
                              context=config.context)
    chosen = choose(records, scores, config.method, per_question=config.per_question, keep=config.keep,
                    seed=config.seed)
    info = {"method": config.method, "candidates": len(records), "selected": len(chosen), "out": str(out),
            "format": loaded.format, "context": config.context}
    if not is_main:
        return info
    write_jsonl([records[i] for i in chosen], out, loaded.format)
    keep_set, values = set(chosen), method_scores(config.method, scores, config.seed)
    with open(scores_file(out), "w") as fh:
        for i, row in enumerate(score_rows(scores)):
            fh.write(json.dumps({"index": i, "selected": i in keep_set, "method_score": values[i], **row}) + "\n")
    return info
