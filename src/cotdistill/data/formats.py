"""Loading and writing reasoning records in the formats people have.

Formats (auto-detected from the first row's keys, or named):

* ``cot``      — ``{"prompt", "cot", "answer"}`` (plain JSONL);
* ``messages`` — ``{"messages": [{"role", "content"}, …]}`` with the assistant content ``<think>…</think>answer``;
* ``sharegpt`` — ``{"conversations": [{"from", "value"}, …], "system"?}`` with Bespoke-Stratos / OpenThoughts
  markers ``<|begin_of_thought|>…<|end_of_thought|>`` and ``<|begin_of_solution|>…<|end_of_solution|>``
  (``<think>`` markers are accepted too);
* ``gsm8k``    — ``{"question", "answer"}`` with the answer ``rationale #### final`` (GSM8K as published): the
  rationale is the chain of thought, the final number the answer.

Columns named otherwise are mapped with ``fields`` (``{"prompt": "problem", "cot": "reasoning", …}``: our name →
the dataset's column), before the format is detected.

Sources: a ``.jsonl``/``.json`` file, a ``.parquet``/``.arrow`` file, a local HF ``datasets`` directory
(``save_to_disk`` output, or a folder of data files / a loading script for ``datasets.load_dataset``), a hub
dataset id (``openai/gsm8k`` with ``subset="main"``; ``split`` picks the split, ``train`` by default), or rows
already in memory (a ``datasets.Dataset`` or a list of dicts). A folder of data files that ``load_dataset`` would
read only in part (files of two kinds, a file not named after a split beside ones that are) is refused.
"""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cotdistill.config import ConfigError
from cotdistill.data.records import DataError, ReasoningRecord, check_record, split_think

FormatName = Literal["cot", "messages", "sharegpt", "gsm8k"]
FORMATS = typing.get_args(FormatName)
# the names a field mapping may give columns to: each format's keys
FIELD_NAMES = ("prompt", "cot", "answer", "messages", "conversations", "system", "question")
BEGIN_THOUGHT, END_THOUGHT = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_SOLUTION, END_SOLUTION = "<|begin_of_solution|>", "<|end_of_solution|>"


@dataclass
class LoadResult:
    records: list[ReasoningRecord]
    format: str
    skipped: list[str] = field(default_factory=list)  # one located error message per skipped row


def detect_format(row: dict[str, Any], source: str, index: int) -> str:
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if {"prompt", "cot", "answer"} <= set(row):
        return "cot"
    if {"question", "answer"} <= set(row) and GSM8K_MARK in str(row["answer"]):
        return "gsm8k"
    raise DataError(source, index, f"keys of one format: {FORMATS} (messages | conversations | prompt+cot+answer | "
                    "question+answer with '####'); map other column names with data.fields",
                    f"keys {sorted(row)}")


def rename_fields(row: dict[str, Any], fields: dict[str, str] | None, source: str, index: int) -> dict[str, Any]:
    """The row with each mapped column under our name (``fields``: our name → the dataset's column)."""
    if not fields:
        return row
    missing = [theirs for theirs in fields.values() if theirs not in row]
    if missing:
        raise DataError(source, index, f"the columns data.fields names ({', '.join(fields.values())})",
                        f"no {missing} among {sorted(row)}")
    renamed = {k: v for k, v in row.items() if k not in fields.values()}
    renamed.update({ours: row[theirs] for ours, theirs in fields.items()})
    return renamed


def check_fields(fields: dict[str, str] | None) -> None:
    unknown = sorted(set(fields or {}) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError(f"fields maps our names to the dataset's columns; our names are {', '.join(FIELD_NAMES)}, "
                         f"got {unknown}")


def _from_cot(row: dict[str, Any], source: str, index: int) -> ReasoningRecord:
    missing = [k for k in ("prompt", "cot", "answer") if k not in row]
    if missing:
        raise DataError(source, index, "fields prompt, cot, answer", f"missing {missing}")
    meta = {k: v for k, v in row.items() if k not in ("prompt", "cot", "answer")}
    return ReasoningRecord(row["prompt"], row["cot"], row["answer"], meta)


def _from_messages(row: dict[str, Any], source: str, index: int) -> ReasoningRecord:
    messages = row["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise DataError(source, index, "messages as a list of {role, content}", repr(messages)[:80])
    roles = [m.get("role") for m in messages]
    system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    users = [m["content"] for m in messages if m.get("role") == "user"]
    assistants = [m["content"] for m in messages if m.get("role") == "assistant"]
    if not users or not assistants:
        raise DataError(source, index, "a user and an assistant message", f"roles {roles}")
    cot, answer = split_think(assistants[-1], source, index)
    meta = {k: v for k, v in row.items() if k != "messages"}
    return ReasoningRecord(users[-1], cot, answer, meta, system=system)


GSM8K_MARK = "####"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".csv")  # a missing file, not a hub id


def _from_gsm8k(row: dict[str, Any], source: str, index: int) -> ReasoningRecord:
    solution = row["answer"]
    if not isinstance(solution, str):  # str() of a list was split at its "####": the answer "4']"
        raise DataError(source, index, "a string answer", type(solution).__name__)
    if GSM8K_MARK not in solution:
        raise DataError(source, index, f"an answer 'rationale {GSM8K_MARK} final'", f"no {GSM8K_MARK} in "
                        f"{solution[:60]!r}")
    rationale, final = solution.rsplit(GSM8K_MARK, 1)  # the last mark: a rationale may quote one
    meta = {k: v for k, v in row.items() if k not in ("question", "answer")}
    return ReasoningRecord(row["question"], rationale.strip(), final.strip(), meta)


def _split_sharegpt_value(text: str, source: str, index: int) -> tuple[str, str]:
    if BEGIN_THOUGHT in text or END_THOUGHT in text:
        if END_THOUGHT not in text:
            raise DataError(source, index, f"{END_THOUGHT} closing the thought", f"no {END_THOUGHT}")
        thought = text.split(BEGIN_THOUGHT, 1)[-1].split(END_THOUGHT, 1)[0]
        rest = text.split(END_THOUGHT, 1)[1]
        solution = rest.split(BEGIN_SOLUTION, 1)[-1].split(END_SOLUTION, 1)[0]
        return thought.strip(), solution.strip()
    return split_think(text, source, index)


def _from_sharegpt(row: dict[str, Any], source: str, index: int) -> ReasoningRecord:
    turns = row["conversations"]
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise DataError(source, index, "conversations as a list of {from, value}", repr(turns)[:80])
    speakers = [t.get("from") for t in turns]
    users = [t["value"] for t in turns if t.get("from") in ("human", "user")]
    bots = [t["value"] for t in turns if t.get("from") in ("gpt", "assistant")]
    if not users or not bots:
        raise DataError(source, index, "a human and a gpt turn", f"speakers {speakers}")
    cot, answer = _split_sharegpt_value(bots[-1], source, index)
    system = row.get("system") or next((t["value"] for t in turns if t.get("from") == "system"), None)
    meta = {k: v for k, v in row.items() if k not in ("conversations", "system")}
    return ReasoningRecord(users[-1], cot, answer, meta, system=system)


_PARSERS = {"cot": _from_cot, "messages": _from_messages, "sharegpt": _from_sharegpt, "gsm8k": _from_gsm8k}


def iter_rows(path, **where) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (index, row). For JSONL the index is the 1-based file line; otherwise the 0-based row number."""
    for index, row in iter_rows_or_errors(path, **where):
        if isinstance(row, DataError):
            raise row
        if row:  # blank lines are {}
            yield index, row


def iter_rows_or_errors(path, *, split: str = "train",
                        subset: str | None = None) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """Like :func:`iter_rows`, but a bad line is yielded as its ``DataError`` so reading can go on past it."""
    if not isinstance(path, (str, Path)):  # rows in memory: a datasets.Dataset or a list of dicts
        for index, row in enumerate(path):
            yield index, row if isinstance(row, dict) else DataError(source_name(path), index, "a dict per row",
                                                                     type(row).__name__)
        return
    local = Path(path)
    if not local.exists():
        yield from enumerate(_load_hub(str(path), split, subset))
        return
    if local.is_dir() or local.suffix in (".parquet", ".arrow"):
        yield from enumerate(_load_hf(local, split, subset))
        return
    with open(local, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            yield lineno, _parse_line(raw, str(local), lineno)


def source_name(source) -> str:
    """How messages name a source: its path or hub id, or ``<in-memory rows>`` for a Dataset or a list."""
    return str(source) if isinstance(source, (str, Path)) else f"<in-memory {type(source).__name__}>"


def _parse_line(raw: bytes, source: str, lineno: int) -> dict[str, Any] | DataError:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return DataError(source, lineno, "UTF-8 text", f"byte 0x{raw[err.start]:02x} at column {err.start + 1}")
    if not line.strip():
        return {}
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        return DataError(source, lineno, "one JSON object per line", f"invalid JSON ({err.msg})")
    except RecursionError:  # the decoder recurses once per level: 200,000 nested brackets overflow the stack
        return DataError(source, lineno, "one JSON object per line",
                         f"JSON nested deeper than Python's recursion limit ({sys.getrecursionlimit()})")
    if not isinstance(row, dict):
        return DataError(source, lineno, "a JSON object", type(row).__name__)
    return row


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that holds one object (a stage's ``results.json`` or ``summary.json``), every way it can be
    broken a :class:`DataError` naming the file."""
    source = str(path)
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(source, None, "a UTF-8 JSON file",
                        f"byte 0x{err.object[err.start]:02x} at offset {err.start}") from None
    except json.JSONDecodeError as err:
        raise DataError(source, None, "a JSON object",
                        f"invalid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise DataError(source, None, "a JSON object",
                        f"JSON nested deeper than Python's recursion limit ({sys.getrecursionlimit()})") from None
    if not isinstance(value, dict):
        raise DataError(source, None, "a JSON object", type(value).__name__)
    return value


def _load_hf(path: Path, split: str, subset: str | None):
    import datasets

    if path.is_dir() and not _saved_to_disk(path):  # a folder of data files or a loading script
        check_all_files_read(path)
        return _load_dataset(str(path), split, subset, str(path))
    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(str(path), None, f"a DatasetDict with a {split!r} split (data.split, eval.split)",
                                f"splits {list(ds)}")
            ds = ds[split]
        return ds
    kind = path.suffix[1:]
    try:
        if kind == "parquet":
            import pyarrow.parquet

            pyarrow.parquet.read_schema(path)  # a file that is no parquet fails here, before datasets logs it too
            return datasets.Dataset.from_parquet(str(path))
        return datasets.Dataset.from_file(str(path))
    except Exception as err:  # pyarrow's errors (ArrowInvalid, OSError, …) and datasets' own, of every type
        raise DataError(str(path), None, "a Parquet file" if kind == "parquet" else "an Arrow file",
                        f"{type(err).__name__}: {_first_line(err)[:200]}") from None


# how datasets.load_dataset reads each kind of data file; a suffix not here is a kind of its own
READERS = {".json": "json", ".jsonl": "json", ".ndjson": "json", ".parquet": "parquet", ".arrow": "arrow",
           ".csv": "csv", ".tsv": "csv", ".txt": "text"}


def check_all_files_read(folder: Path) -> None:
    """Refuse a folder of data files that ``datasets.load_dataset`` would read only in part: it reads the files
    named after a split (``train*``, ``test*``, …) when any file is so named, and of those only the most common
    kind, silently skipping the rest (a ``.csv`` beside ``.jsonl`` files). What it never reads as data is not
    counted: hidden files and folders, ``__*`` folders, the dataset card and info files (``FILES_TO_IGNORE``)."""
    from datasets.data_files import FILES_TO_IGNORE, DataFilesDict, get_data_patterns

    def ignored(rel: Path) -> bool:
        return (rel.name in FILES_TO_IGNORE or any(part.startswith(".") for part in rel.parts)
                or any(part.startswith("__") for part in rel.parent.parts))

    files = {p for p in folder.rglob("*") if p.is_file() and not ignored(p.relative_to(folder))}
    try:
        splits = DataFilesDict.from_patterns(get_data_patterns(str(folder)), str(folder))
    except (FileNotFoundError, ValueError):  # no data files at all: load_dataset's own error says so
        return
    picked = {Path(f) for split in splits.values() for f in split} & files
    by_kind: dict[str, list[Path]] = {}
    for p in sorted(picked):
        by_kind.setdefault(READERS.get(p.suffix.lower(), p.suffix.lower()), []).append(p)
    read = max(by_kind.values(), key=len, default=[])
    skipped = [(sorted(picked - set(read)), "files of another kind"),
               (sorted(files - picked), "not named after a split, as "
                                        f"{read[0].relative_to(folder) if read else 'others'} is")]
    found = "; ".join(f"{_names(paths, folder)} skipped ({why})" for paths, why in skipped if paths)
    if found:
        raise DataError(str(folder), None, "a folder whose every data file datasets.load_dataset reads (one kind "
                        "of file; when one is named train*/test*/validation*, every one named after a split)", found)


def _names(paths: list[Path], folder: Path, shown: int = 8) -> str:
    names = ", ".join(str(p.relative_to(folder)) for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _saved_to_disk(path: Path) -> bool:
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def _load_hub(name: str, split: str, subset: str | None):
    from cotdistill.sources import HUB_ID

    if name.startswith((".", "/", "~")) or Path(name).suffix in DATA_SUFFIXES or not HUB_ID.fullmatch(name):
        raise DataError(name, None, "an existing file or dataset directory, or a hub dataset id",
                        "nothing at that path")
    return _load_dataset(name, split, subset, name)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _load_dataset(name: str, split: str, subset: str | None, source: str):
    """``datasets.load_dataset`` with its many failure types turned into one located error (offline, an unknown
    id, a wrong split or subset all raise different exceptions)."""
    import datasets

    try:
        return datasets.load_dataset(name, subset, split=split)
    except Exception as err:
        first = _first_line(err)
        where = "" if Path(name).exists() else " (not a file or folder here)"
        raise DataError(source, None, f"a dataset datasets.load_dataset can read{where}, split {split!r}"
                        + (f", subset {subset!r}" if subset else ""), f"{type(err).__name__}: {first[:200]}") from None


def parse_row(row: dict[str, Any], fmt: str, source: str, index: int) -> ReasoningRecord:
    try:
        record = _PARSERS[fmt](row, source, index)
    except (KeyError, TypeError, AttributeError) as err:
        raise DataError(source, index, f"a {fmt}-format row", f"{type(err).__name__}: {err}") from None
    return check_record(record, source, index)


def load_records(path, fmt: str = "auto", *, on_error: str = "raise", limit: int | None = None,
                 fields: dict[str, str] | None = None, split: str = "train",
                 subset: str | None = None) -> LoadResult:
    """Load every record of ``path`` (a file, folder, hub id, or rows in memory). ``on_error='skip'`` skips bad
    rows and lists them in ``skipped``."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {fmt!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    check_fields(fields)
    source, records, skipped = source_name(path), [], []
    detected = None if fmt == "auto" else fmt
    for index, row in iter_rows_or_errors(path, split=split, subset=subset):
        try:
            if isinstance(row, DataError):
                raise row
            if not row:  # a blank line
                continue
            row = rename_fields(row, fields, source, index)
            detected = detected or detect_format(row, source, index)
            records.append(parse_row(row, detected, source, index))
        except DataError as err:
            if on_error == "raise":
                raise
            skipped.append(str(err))
        if limit is not None and len(records) >= limit:
            break
    if not records and not skipped:
        raise DataError(source, None, "at least one record", "an empty source")
    return LoadResult(records, detected or "unknown", skipped)


def record_to_row(record: ReasoningRecord, fmt: str) -> dict[str, Any]:
    """The inverse of parsing: a row in ``fmt`` that loads back into an equal record."""
    if fmt == "cot":
        return {"prompt": record.prompt, "cot": record.cot, "answer": record.answer, **record.metadata}
    if fmt == "messages":
        return {"messages": record.messages(), **record.metadata}
    if fmt == "sharegpt":
        value = (f"{BEGIN_THOUGHT}\n\n{record.cot}\n\n{END_THOUGHT}\n\n"
                 f"{BEGIN_SOLUTION}\n\n{record.answer}\n\n{END_SOLUTION}")
        row = {"conversations": [{"from": "user", "value": record.prompt}, {"from": "assistant", "value": value}]}
        if record.system:
            row["system"] = record.system
        return {**row, **record.metadata}
    if fmt == "gsm8k":
        return {"question": record.prompt, "answer": f"{record.cot}\n{GSM8K_MARK} {record.answer}", **record.metadata}
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def write_jsonl(records: list[ReasoningRecord], path: str | Path, fmt: str = "messages") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(record_to_row(record, fmt), ensure_ascii=False) + "\n" for record in records)
