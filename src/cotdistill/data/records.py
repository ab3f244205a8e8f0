"""The unit of training data: a prompt, a chain of thought and an answer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cotdistill.errors import UserError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class DataError(UserError, ValueError):
    """Bad input, located: the source (file), the record index or line, what was expected and what was found."""

    def __init__(self, source: str, index: int | None, expected: str, found: str) -> None:
        self.source, self.index, self.expected, self.found = source, index, expected, found
        # JSONL rows are located by their 1-based file line, everything else by record index
        unit = "line" if source.endswith((".jsonl", ".json")) else "record"
        where = source if index is None else f"{source}, {unit} {index}"
        super().__init__(f"{where}: expected {expected}; found {found}")


@dataclass
class ReasoningRecord:
    """One training example. ``cot`` is the text inside ``<think>…</think>``, without the markers."""

    prompt: str
    cot: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)
    system: str | None = None

    def assistant_text(self) -> str:
        """The assistant turn as a reasoning model writes it: ``<think>\\ncot\\n</think>\\n\\nanswer``."""
        return f"{THINK_OPEN}\n{self.cot}\n{THINK_CLOSE}\n\n{self.answer}"

    def messages(self) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.assistant_text()}]


def split_think(text: str, source: str, index: int | None) -> tuple[str, str]:
    """Split ``<think>cot</think>answer`` into (cot, answer); surrounding whitespace is stripped from both."""
    open_at = text.find(THINK_OPEN)
    close_at = text.find(THINK_CLOSE)
    if close_at < 0:
        raise DataError(source, index, f"an assistant turn containing {THINK_CLOSE}",
                        f"no {THINK_CLOSE} in {text[:60]!r}")
    if open_at > close_at:
        raise DataError(source, index, f"{THINK_OPEN} before {THINK_CLOSE}", f"{THINK_CLOSE} first")
    start = 0 if open_at < 0 else open_at + len(THINK_OPEN)
    return text[start:close_at].strip(), text[close_at + len(THINK_CLOSE):].strip()


def _check_encodable(value: str, name: str, source: str, index: int | None) -> None:
    """JSON's ``\\ud800`` escapes decode to lone surrogates, which no tokenizer can encode: say where."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(source, index, f"valid Unicode text in the {name}",
                        f"an unpaired surrogate {value[err.start]!r} at character {err.start}") from None


def check_record(record: ReasoningRecord, source: str, index: int | None) -> ReasoningRecord:
    """Reject records no trainer should silently accept (empty prompt, CoT or answer)."""
    for name in ("prompt", "cot", "answer"):
        value = getattr(record, name)
        if not isinstance(value, str):
            raise DataError(source, index, f"a string {name}", f"{type(value).__name__}")
        if not value.strip():
            raise DataError(source, index, f"a non-empty {name}", f"an empty {name}")
        _check_encodable(value, name, source, index)
    for name in ("cot", "answer"):
        if THINK_OPEN in getattr(record, name) or THINK_CLOSE in getattr(record, name):
            raise DataError(source, index, f"a {name} without think markers of its own",
                            f"{THINK_OPEN} or {THINK_CLOSE} inside the {name}")
    return record


def record_identity(record: ReasoningRecord) -> tuple[str | None, str, str, str]:
    """What makes two records the same training example."""
    return record.system, record.prompt, record.cot, record.answer


def repeated_positions(records: list[ReasoningRecord], seen: set | None = None) -> set[int]:
    """Positions of records identical to an earlier one (or to one in ``seen``, which is updated)."""
    seen = set() if seen is None else seen
    repeated = set()
    for i, record in enumerate(records):
        key = record_identity(record)
        if key in seen:
            repeated.add(i)
        seen.add(key)
    return repeated


def parse_system_policy(policy: str) -> tuple[str, str | None]:
    """``keep`` | ``drop`` | ``replace:TEXT`` → (kind, text)."""
    if policy in ("keep", "drop"):
        return policy, None
    if policy.startswith("replace:") and policy[len("replace:"):].strip():
        return "replace", policy[len("replace:"):]
    from cotdistill.config import ConfigError

    raise ConfigError(f"system must be keep, drop or replace:TEXT, got {policy!r}")


def apply_system_policy(records: list[ReasoningRecord], policy: str) -> list[ReasoningRecord]:
    """The system turn each record is trained with. ``drop`` (the default) is what the truncation paper's code
    does: the system turn is neither rendered nor counted in ``n``, so LSP 0.5 keeps the same share of each record
    as there; ``keep`` renders the dataset's own (Bespoke-Stratos has a long one) into P; ``replace:TEXT`` puts
    TEXT in every record. Evaluate with the same choice (``eval --system``) so that test prompts match.

    ``drop`` drops the *dataset's* system turn, not the template's: a template that adds a default system prompt to
    a conversation without one (SmolLM2's "You are a helpful AI assistant named SmolLM…", ~20 tokens) renders it
    into P, counted in ``n``, at training and, with no ``eval --system``, at evaluation alike — the prompt the model
    was tuned with and that every user's inference gives it. ``replace:TEXT`` (and ``eval --system TEXT``)
    replaces it."""
    kind, text = parse_system_policy(policy)
    if kind == "keep":
        return records
    system = text if kind == "replace" else None
    return [dataclasses.replace(r, system=system) for r in records]


def system_for_eval(policy: str) -> str | None:
    """The system prompt to evaluate with under a training ``policy`` (``keep`` has none common to all records)."""
    kind, text = parse_system_policy(policy)
    return text if kind == "replace" else None
