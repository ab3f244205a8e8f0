"""A run's data, prepared once: records read by the ``data`` config, split, encoded, de-duplicated and checked.

``train``, ``data stats`` and ``teacher cache`` read records through :func:`load_config_records` and choose them with
:func:`select_config_records`, so the three see the same rows; :func:`prepare_data` goes on to the encoded training
and validation examples a trainer needs, with every count it made on the way (``notes``) and the warnings it owes
the user (``warnings``: the caller decides who prints them). Nothing here loads weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field

from cotdistill.data.encode import EncodeConfig, EncodedExample, encode_records
from cotdistill.data.formats import LoadResult, load_records, source_name
from cotdistill.data.records import ReasoningRecord, apply_system_policy, repeated_positions
from cotdistill.data.split import Selection, split_records, templated_lengths, within_limit
from cotdistill.errors import TrainingError
from cotdistill.sources import is_world, world_data

logger = logging.getLogger("cotdistill.training")


def read_any_records(path, fmt: str = "auto", on_error: str = "raise", limit: int | None = None, *,
                     fields: dict[str, str] | None = None, split: str = "train",
                     subset: str | None = None) -> LoadResult:
    """The records of a ``world:`` spec, a file, folder or hub id, or rows in memory, as given (system turns
    included), with the rows ``on_error: skip`` skipped."""
    if is_world(path):
        return LoadResult(world_data(path, limit), "world")
    return load_records(path, fmt, on_error=on_error, limit=limit, fields=fields, split=split, subset=subset)


def load_split_records(path, fmt: str = "auto", on_error: str = "raise", limit: int | None = None,
                       system: str = "drop", *, fields: dict[str, str] | None = None, split: str = "train",
                       subset: str | None = None) -> tuple[list[ReasoningRecord], str]:
    """:func:`read_any_records` with the system policy applied; skipped rows are reported (a choice, never a
    silent one)."""
    result = read_any_records(path, fmt, on_error, limit, fields=fields, split=split, subset=subset)
    if result.skipped and os.environ.get("RANK", "0") == "0":
        logger.warning("warning: skipped %d bad rows of %s (data.on_error: skip); first: %s", len(result.skipped),
                       source_name(path), result.skipped[0])
    return apply_system_policy(result.records, system), result.format


def load_config_records(data, path=None, limit: int | None = None, *,
                        validation: bool = False) -> tuple[list[ReasoningRecord], str]:
    """``load_split_records`` with every reading option taken from the run's ``data`` config (a ``DataConfig``);
    ``validation``: the validation source, read from ``data.val_split`` (a hub dataset's validation split)."""
    split = (data.val_split or data.split) if validation else data.split
    return load_split_records(data.path if path is None else path, data.format, data.on_error, limit, data.system,
                              fields=data.fields, split=split, subset=data.subset)


def select_config_records(data, records: list[ReasoningRecord], tokenizer, *, separate_val: bool) -> Selection:
    """Which of ``records`` (read from ``data.path`` with ``data.read_limit``) train and validate, by ``data``'s
    rules (``split_records``); ``separate_val``: validation is another file, so nothing is split off."""
    lengths = templated_lengths(tokenizer, records) if data.max_tokens is not None else None
    return split_records(len(records), lengths=lengths, max_tokens=data.max_tokens,
                         val_size=None if separate_val else data.val_size,
                         val_fraction=0.0 if separate_val else data.val_fraction, split_seed=data.split_seed,
                         max_records=data.max_records)


def records_fingerprint(*sources: list[ReasoningRecord]) -> str:
    """SHA-256 over every record read (the training file's, then a separate validation file's), in file order:
    the rows a checkpoint's data position counts through. A resume on other rows (shuffled, cut, edited) would
    go on at the next step of another run, so it is compared like a config key. One JSON line per record (JSON
    escapes newlines, so records cannot run into each other); computed once per run, as they are read."""
    digest = hashlib.sha256()
    for k, records in enumerate(sources):
        digest.update(f"\x1esource {k}\n".encode())
        for r in records:
            line = json.dumps([r.system, r.prompt, r.cot, r.answer, r.metadata], sort_keys=True, default=str)
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


@dataclass
class PreparedData:
    """What a run trains and validates on, and what was counted on the way."""

    examples: list[EncodedExample]
    val_examples: list[EncodedExample]
    dropped: list[int]  # training records left with no supervised token
    num_records: int  # training records chosen, before encoding dropped any
    data_format: str
    fingerprint: str  # records_fingerprint of every record read
    selection: Selection
    val_file: str | None  # the separate validation source, as the start-of-run line names it
    notes: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # the training records by their index in the file: what on-policy steps read their prompts from
    records: dict[int, ReasoningRecord] = field(default_factory=dict)
    # the validation records by their index in their file (cross-tokenizer KD renders them for the teacher)
    val_records: dict[int, ReasoningRecord] = field(default_factory=dict)

    def describe(self, dedup: bool) -> str:
        """The start-of-run line: what will be trained on, and what was left out and why."""
        notes, tokens = self.notes, sum(len(e) for e in self.examples)
        supervised = sum(e.num_supervised for e in self.examples)
        val_file = self.val_file
        if "validation_longer_than_max_tokens" in notes:
            val_file += f" ({notes['validation_longer_than_max_tokens']} longer than data.max_tokens, dropped)"
        return (f"data: {self.num_records} training records ({self.data_format}), {len(self.examples)} kept: "
                f"{len(self.dropped)} left no supervised token, {notes['overlong_records']} longer than the model, "
                f"{notes['duplicate_records']} duplicates{' (dropped)' if dedup else ' (kept)'}; "
                f"{len(self.val_examples)} validation; {supervised / max(tokens, 1):.2f} of the kept tokens "
                f"supervised; {self.selection.describe(val_file)}")

    def lost_share_warning(self, dedup: bool) -> str | None:
        """A warning when much was dropped (LSP 0.5 with ``cotAns`` on long prompts once dropped 349 of 400
        records, reported only in the final JSON)."""
        n = self.num_records
        lost = len(self.dropped) + self.notes["overlong_records"] + (self.notes["duplicate_records"] if dedup else 0)
        if not n or lost / n <= 0.10:
            return None
        return (f"{lost} of {n} training records ({lost / n:.0%}) were dropped; see the line above for why (for LSP "
                "with sections that start late, a smaller share of records has supervised tokens)")


def prepare_data(data, encode: EncodeConfig, tokenizer, *, rows=None, val_rows=None,
                 max_positions: int | None = None) -> PreparedData:
    """Read, select, encode and check a run's data. ``data``: the run's ``DataConfig``; ``rows`` / ``val_rows``:
    records passed in memory instead of ``data.path`` / ``data.val_path``; ``max_positions``: the smallest model's
    positions (longer rows are dropped and counted: trained past its positions a model silently misbehaves)."""
    records, data_format = load_config_records(data, rows, data.read_limit)
    separate_val = bool(data.val_path) or val_rows is not None
    if val_rows is not None and data.val_size is not None:
        raise TrainingError("data.val_size splits validation off the training data, and validation rows were "
                            "passed (val_data=…): give only one")
    selection = select_config_records(data, records, tokenizer, separate_val=separate_val)
    source = source_name(rows if rows is not None else data.path)
    # every record is encoded with its index in the file, so a teacher cache built on the file fits either part
    train_indices = selection.train
    train_records = [records[i] for i in train_indices]
    encoded = encode_records(tokenizer, train_records, encode, source, indices=train_indices)
    train_keys: set = set()  # filled with the training records' identities, for the validation check below
    repeated = {train_indices[k] for k in repeated_positions(train_records, train_keys)}
    notes, warnings = {"duplicate_records": len(repeated), **selection.notes()}, []
    examples = _without_duplicates(encoded.examples, repeated, data.dedup, warnings)
    val = _validation(data, encode, tokenizer, records, selection, source, val_rows, notes)
    # never validate on a record trained on
    in_train = {val.indices[k] for k in repeated_positions(val.records, train_keys)}
    notes["validation_records_in_training"] = len(in_train)
    val_examples = [e for e in val.examples if e.index not in in_train]
    examples, val_examples = _drop_overlong(examples, val_examples, max_positions, notes, warnings)
    notes["validation_records"] = len(val_examples)
    prepared = PreparedData(examples, val_examples, encoded.dropped, len(train_records), data_format,
                            records_fingerprint(records, *val.read), selection,
                            val.file, notes, warnings, dict(zip(train_indices, train_records)),
                            dict(zip(val.indices, val.records)))
    if not examples:
        too_long = (f", {len(selection.too_long)} longer than data.max_tokens {data.max_tokens}"
                    if data.max_tokens is not None else "")
        raise TrainingError(f"no training examples left ({len(encoded.dropped)} left no supervised token after "
                            f"truncation, {notes['overlong_records']} longer than the model's positions{too_long})")
    return prepared


def _without_duplicates(examples: list[EncodedExample], repeated: set[int], dedup: bool,
                        warnings: list[str]) -> list[EncodedExample]:
    """Duplicates are counted always and removed on request."""
    if repeated and dedup:
        return [e for e in examples if e.index not in repeated]
    if repeated:
        warnings.append(f"{len(repeated)} training records repeat an earlier one (set data.dedup: true to drop them)")
    return examples


@dataclass
class _Validation:
    records: list[ReasoningRecord]
    indices: list[int]
    examples: list[EncodedExample]
    file: str | None  # a separate validation source, by name; None when split off the training file
    read: tuple[list[ReasoningRecord], ...] = ()  # a separate source's every row, for the fingerprint


def _validation(data, encode: EncodeConfig, tokenizer, records: list[ReasoningRecord], selection: Selection,
                source: str, val_rows, notes: dict) -> _Validation:
    """The validation records, their indices in their file, and their examples: split off the training file
    (``selection.val``, so a teacher cache built on it covers them), or another file (indices from 0), whose
    records longer than ``data.max_tokens`` are dropped as the training file's are."""
    if val_rows is None and not data.val_path:
        chosen = [records[i] for i in selection.val]
        examples = encode_records(tokenizer, chosen, encode, source, indices=selection.val).examples
        return _Validation(chosen, selection.val, examples, None)
    path = val_rows if val_rows is not None else data.val_path
    read, _ = load_config_records(data, path, validation=True)
    indices = list(range(len(read)))
    if data.max_tokens is not None:
        indices, too_long = within_limit(templated_lengths(tokenizer, read), data.max_tokens)
        notes["validation_longer_than_max_tokens"] = len(too_long)
    chosen = [read[i] for i in indices]
    examples = encode_records(tokenizer, chosen, encode, source_name(path), indices=indices).examples
    return _Validation(chosen, indices, examples, data.val_path or "val_data", (read,))


def _drop_overlong(examples: list[EncodedExample], val_examples: list[EncodedExample], limit: int | None,
                   notes: dict, warnings: list[str]) -> tuple[list[EncodedExample], list[EncodedExample]]:
    """Rows longer than the models' positions are dropped, counted and reported (a 307k-token record tried to
    allocate 94.7 GB). ``encode.max_seq_len`` truncates them instead."""
    notes["max_positions"] = limit
    if limit is None:
        notes["overlong_records"] = 0
        return examples, val_examples
    overlong = [e.index for e in examples if len(e) > limit]
    notes["overlong_records"] = len(overlong)
    if overlong:
        warnings.append(f"dropped {len(overlong)} training records longer than the model's {limit} positions (first: "
                        f"record {overlong[0]}); set encode.max_seq_len to truncate them instead")
    return [e for e in examples if len(e) <= limit], [e for e in val_examples if len(e) <= limit]
