"""Token statistics of a dataset before and after the truncation protocol (``cotdistill data stats``)."""

from __future__ import annotations

from cotdistill.data.encode import ANSWER, COT, PROMPT, EncodeConfig, encode_records
from cotdistill.data.records import ReasoningRecord

SEGMENTS = {"prompt": PROMPT, "cot": COT, "answer": ANSWER}


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p50": 0, "p95": 0, "max": 0, "total": 0}
    ordered = sorted(values)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"mean": sum(values) / len(values), "p50": pct(0.5), "p95": pct(0.95), "max": ordered[-1],
            "total": sum(values)}


def token_stats(tokenizer, records: list[ReasoningRecord], config: EncodeConfig,
                max_length: int | None = None, source: str = "records") -> dict:
    """Records, tokens per segment, supervised tokens and dropped records under ``config``; with ``max_length``,
    how many rows are longer (``train`` drops those: the model has no positions for them)."""
    result = encode_records(tokenizer, records, config, source)
    examples = result.examples
    per_segment = {name: _summary([ex.segments.count(seg) for ex in examples]) for name, seg in SEGMENTS.items()}
    return {
        "records": len(examples),
        "dropped": len(result.dropped),
        "tokens": sum(len(ex) for ex in examples),
        "supervised_tokens": sum(ex.num_supervised for ex in examples),
        "sequence_length": _summary([len(ex) for ex in examples]),
        "segments": per_segment,
        "over_max_length": sum(len(ex) > max_length for ex in examples) if max_length else None,
    }


def before_after(tokenizer, records: list[ReasoningRecord], config: EncodeConfig,
                 max_length: int | None = None, source: str = "records") -> dict:
    """Stats with no truncation (same sections) and with ``config``'s truncation."""
    return {"before": token_stats(tokenizer, records, config.untruncated(), max_length, source),
            "after": token_stats(tokenizer, records, config, max_length, source)}


def system_token_share(tokenizer, records: list[ReasoningRecord], config: EncodeConfig,
                       source: str = "records") -> float:
    """The share of all (untruncated) tokens that the records' own system turns take: what ``data.system: keep``
    adds to P and to ``n`` compared with ``drop``."""
    from cotdistill.data.records import apply_system_policy

    if not any(r.system for r in records):  # nothing to drop: skip two tokenizing passes over the data
        return 0.0
    full = config.untruncated()
    kept = token_stats(tokenizer, records, full, source=source)["tokens"]
    dropped = token_stats(tokenizer, apply_system_policy(records, "drop"), full, source=source)["tokens"]
    return (kept - dropped) / kept if kept else 0.0


def format_stats(stats: dict) -> str:
    lines = []
    for when in ("before", "after"):
        s = stats[when]
        over = f" longer_than_max_length={s['over_max_length']}" if s.get("over_max_length") is not None else ""
        lines.append(f"{when}: records={s['records']} dropped={s['dropped']} tokens={s['tokens']} "
                     f"supervised_tokens={s['supervised_tokens']}{over}")
        for name, seg in [("sequence", s["sequence_length"])] + list(s["segments"].items()):
            lines.append(f"  {name:<9} mean={seg['mean']:.1f} p50={seg['p50']} p95={seg['p95']} max={seg['max']} "
                         f"total={seg['total']}")
    b, a = stats["before"]["tokens"], stats["after"]["tokens"]
    lines.append(f"processed tokens after/before = {a / max(b, 1):.3f}")
    if "system_token_share" in stats:
        lines.append(f"system turns = {stats['system_token_share']:.3f} of the tokens as given "
                     f"(data.system: {stats['system']})")
    if "longer_than_max_tokens" in stats:
        lines.append(f"longer than data.max_tokens {stats['max_tokens']} = {stats['longer_than_max_tokens']} "
                     "(train drops them before its split)")
    if "duplicate_records" in stats:
        lines.append(f"duplicate records = {stats['duplicate_records']} (train keeps them unless data.dedup: true)")
    return "\n".join(lines)
