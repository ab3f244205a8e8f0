"""Render a record with the chat template, find its P / CoT / A token spans, truncate, and build labels.

Everything that decides which token is trained on lives in :func:`encode_record`, in this order:

1. render the finished conversation with the tokenizer's chat template (``add_generation_prompt=False``);
2. find the character spans of the segments in the rendered text (see :func:`segment_char_spans`);
3. tokenize once with offsets (``add_special_tokens=False``: templates render their own BOS) and give each token
   the segment of its first non-whitespace character (leading whitespace is glue that BPE merges into tokens);
4. apply the truncation protocol — ``lsp``, ``window``, ``cut_after_think`` (which, given ``lsp`` < 1, then keeps
   that lead share of the cut sequence), or one that keeps the ending within LSP's budget (``lsp_keep_answer``,
   ``lsp_keep_tail``: see :func:`kept_ranges`) — then ``max_seq_len`` on what is kept;
5. labels = input ids on the supervised segments, ``IGNORE_INDEX`` elsewhere; then ``random_mask`` ignores exactly
   ``round(random_mask · N)`` of the ``N`` supervised tokens (positions 1…n−1 with a label; Python's round, i.e.
   half to even), chosen by a generator seeded with (``seed``, record index);
6. count supervised tokens; a record with none is dropped and counted (or an error, by ``on_empty``).

Labels are *aligned* with the input ids, as in HF: position ``t`` of the logits predicts ``labels[t + 1]``; the shift
happens once, in the loss. Label 0 can never be predicted and so never counts as supervised.

Segments: P is everything before ``<think>`` (system turn, user turn, template headers — including an empty
``<think></think>`` that some templates insert by themselves, which is thus never treated as a CoT); CoT runs
from ``<think>`` through ``</think>`` (the markers are CoT tokens, so a student learns to open and close its
thought); A is everything after ``</think>``, including the end-of-turn token, so a student learns to stop.
"""

from __future__ import annotations

import dataclasses
import math
import random
import typing
from dataclasses import dataclass, field
from typing import Literal

from cotdistill.config import FRACTION, SHARE, Range, check_field_rules
from cotdistill.data.records import THINK_CLOSE, THINK_OPEN, DataError, ReasoningRecord

IGNORE_INDEX = -100
PROMPT, COT, ANSWER = 0, 1, 2
SEGMENT_NAMES = {"prompt": PROMPT, "cot": COT, "answer": ANSWER}
SECTION_ALIASES = {
    "promptcotAns": ("prompt", "cot", "answer"),
    "cotAns": ("cot", "answer"),
    "cot": ("cot",),
    "ans": ("answer",),
    "promptAns": ("prompt", "answer"),
    "promptCot": ("prompt", "cot"),
}
# lsp_keep_answer / lsp_keep_tail spend LSP's token budget on the lead and the ending together (kept_ranges)
EndingTruncation = Literal["lsp_keep_answer", "lsp_keep_tail"]
Truncation = Literal["none", "lsp", "window", "cut_after_think", EndingTruncation]
Window = Literal["left", "middle", "right"]
OnEmpty = Literal["drop", "error"]
ENDING_TRUNCATIONS = typing.get_args(EndingTruncation)
TRUNCATIONS = typing.get_args(Truncation)
WINDOWS = typing.get_args(Window)
LSP = FRACTION  # a lead-span proportion: some of the sequence is kept


def parse_sections(sections: str | list[str] | tuple[str, ...]) -> frozenset[int]:
    """Segment ids for a section spec: an alias such as ``cotAns`` or a list like ``["cot", "answer"]``."""
    if isinstance(sections, str):
        if sections not in SECTION_ALIASES:
            raise ValueError(f"sections must be one of {sorted(SECTION_ALIASES)} or a list of "
                             f"{sorted(SEGMENT_NAMES)}, got {sections!r}")
        sections = SECTION_ALIASES[sections]
    unknown = [s for s in sections if s not in SEGMENT_NAMES]
    if unknown or not sections:
        raise ValueError(f"sections must name some of {sorted(SEGMENT_NAMES)}, got {list(sections)}")
    return frozenset(SEGMENT_NAMES[s] for s in sections)


@dataclass
class EncodeConfig:
    """How records become training rows. Validated here so that a bad value fails before any work."""

    sections: str | list[str] = field(default="promptcotAns", metadata={
        "help": "the supervised segments: an alias such as cotAns, or a list such as [cot, answer]"})
    truncation: Truncation = field(default="none", metadata={"help": "the truncation protocol"})
    lsp: float = field(default=1.0, metadata={
        "help": "lead-span proportion; also the kept fraction for ``window`` and the lsp_keep_* budget", "range": LSP})
    window: Window = field(default="left", metadata={"help": "with truncation=window: the part kept"})
    keep_tail: int = field(default=0, metadata={
        "help": "with truncation=lsp_keep_tail: the last K tokens kept (part of the lsp budget)"})
    random_mask: float = field(default=0.0, metadata={
        "help": "fraction of supervised tokens ignored, seeded per record", "range": SHARE})
    full_share: float = field(default=0.0, metadata={
        "help": "records kept whole despite the truncation (each with this probability, seeded)", "range": SHARE})
    max_seq_len: int | None = field(default=None, metadata={
        "help": "hard cap applied after the truncation protocol", "range": Range(2)})
    on_empty: OnEmpty = field(default="drop", metadata={
        "help": "a record left with zero supervised tokens"})
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_rules(self)
        parse_sections(self.sections)
        if self.full_share > 0 and self.truncation == "none":
            raise ValueError(f"full_share {self.full_share} has no effect with truncation 'none': every record is "
                             "already whole")
        # a setting the chosen protocol would ignore is refused: a run that claims lsp 0.5 must train on half
        if self.lsp != 1.0 and self.truncation == "none":
            raise ValueError(f"lsp {self.lsp} has no effect with truncation 'none': set truncation to 'lsp' (or "
                             "'window', or 'cut_after_think' to keep that share of the sequence cut after </think>)")
        if (self.keep_tail != 0) != (self.truncation == "lsp_keep_tail") or self.keep_tail < 0:
            raise ValueError(f"keep_tail (the last K tokens kept) goes with truncation 'lsp_keep_tail' and must be "
                             f">= 1 there, 0 otherwise; got keep_tail {self.keep_tail} with truncation "
                             f"{self.truncation!r}")
        if self.window != "left" and self.truncation != "window":
            raise ValueError(f"window {self.window!r} has no effect with truncation {self.truncation!r}: set "
                             "truncation to 'window'")

    @property
    def segment_ids(self) -> frozenset[int]:
        return parse_sections(self.sections)

    def untruncated(self) -> EncodeConfig:
        """The same sections with every token kept: the "before" of ``data stats`` and the full-sequence reference
        (no truncation, no random mask, no cap; ``full_share`` means nothing without a truncation)."""
        return dataclasses.replace(self, truncation="none", lsp=1.0, window="left", keep_tail=0, full_share=0.0,
                                   random_mask=0.0, max_seq_len=None)

    def at_lsp(self, lsp: float) -> EncodeConfig:
        """This config at lead share ``lsp``: 1.0 is :meth:`untruncated` (every record whole); below it a config
        whose truncation spends an LSP budget (``lsp``, ``lsp_keep_*``) keeps it at ``lsp``; any other becomes
        ``lsp``."""
        if lsp >= 1.0:
            return self.untruncated()
        mode = self.truncation if self.truncation in ("lsp", *ENDING_TRUNCATIONS) else "lsp"
        return dataclasses.replace(self, truncation=mode, lsp=lsp, window="left")


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    segments: list[int]
    index: int  # the record's index in its source
    full_length: int  # tokens before truncation
    full_segment_counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    @property
    def num_supervised(self) -> int:
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


def render_conversation(tokenizer, record: ReasoningRecord) -> str:
    return tokenizer.apply_chat_template(record.messages(), tokenize=False, add_generation_prompt=False)


def render_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The text a model continues at inference: the user turn plus the assistant header."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def segment_char_spans(text: str, record: ReasoningRecord, source: str, index: int) -> tuple[int, int]:
    """(cot_start, answer_start) character offsets in the rendered text: where ``<think>`` and A begin."""
    close_at = text.rfind(THINK_CLOSE)
    open_at = text.rfind(THINK_OPEN, 0, max(close_at, 0))
    if close_at < 0 or open_at < 0:
        raise DataError(source, index, f"the chat template to keep {THINK_OPEN}…{THINK_CLOSE} in the assistant turn "
                        "(set chat_template to one that does)", "the markers missing from the rendered text")
    answer_start = close_at + len(THINK_CLOSE)
    if record.cot not in text[open_at:close_at] or record.answer not in text[answer_start:]:
        raise DataError(source, index, "the chat template to render the CoT and answer unchanged",
                        "they were altered (a template that rewrites reasoning content?)")
    return open_at, answer_start


def token_segments(text: str, offsets: list[tuple[int, int]], cot_start: int, answer_start: int) -> list[int]:
    """Each token's segment, from the position of its first non-whitespace character."""
    segments, previous = [], PROMPT
    for start, end in offsets:
        if end <= start:  # zero-width (rare in templates): inherit the previous token's segment
            segments.append(previous)
            continue
        pos = start
        while pos < end - 1 and text[pos].isspace():
            pos += 1
        previous = PROMPT if pos < cot_start else COT if pos < answer_start else ANSWER
        segments.append(previous)
    return segments


def lead_budget(n: int, share: float) -> int:
    """The tokens a lead share of ``n`` keeps: floor, at least one (epsilon: 0.29 * 100 is 28.999… in floats)."""
    return max(1, math.floor(share * n + 1e-9))


def kept_ranges(n: int, config: EncodeConfig, think_start: int | None, think_end: int | None) -> list[tuple[int, int]]:
    """The [start, end) token ranges kept by the truncation protocol from a sequence of ``n`` tokens, in order.

    ``think_start`` / ``think_end``: the first token of ``</think>`` and the one after its last. The ending-keeping
    modes cost what ``lsp`` costs: of the budget ``floor(lsp · n)`` the ending takes what it needs — from
    ``</think>`` to the end (``lsp_keep_answer``), or the last ``keep_tail`` tokens (``lsp_keep_tail``) — and the
    lead the rest (at least one token; the ending is never cut, so a record whose ending alone exceeds the budget
    keeps one lead token more than it). The two are joined, so the student reads a shortened thought that closes
    and answers; positions run on across the gap."""
    if config.truncation == "lsp":
        return [(0, lead_budget(n, config.lsp))]
    if config.truncation == "cut_after_think":
        end = think_end if think_end is not None else n
        return [(0, lead_budget(end, config.lsp) if config.lsp < 1.0 else end)]
    if config.truncation == "window":
        keep = lead_budget(n, config.lsp)
        start = {"left": 0, "middle": (n - keep) // 2, "right": n - keep}[config.window]
        return [(start, start + keep)]
    if config.truncation in ENDING_TRUNCATIONS:
        ending = think_start if config.truncation == "lsp_keep_answer" else max(0, n - config.keep_tail)
        lead = min(ending, max(1, lead_budget(n, config.lsp) - (n - ending)))
        return [(0, n)] if lead == ending else [(0, lead), (ending, n)]
    return [(0, n)]


def kept_whole(config: EncodeConfig, index: int) -> bool:
    """Whether record ``index`` escapes the truncation (``full_share``): a draw seeded by (``seed``, index), so the
    same records are whole in every run and in the teacher cache built with this config."""
    return config.full_share > 0 and random.Random(f"whole:{config.seed}:{index}").random() < config.full_share


def random_mask(labels: list[int], share: float, rng: random.Random) -> list[int]:
    """Ignore exactly ``round(share · N)`` of the ``N`` supervised positions (a coin flip per token made the count
    vary from record to record). Position 0 is never a target, so it is not eligible."""
    eligible = [t for t in range(1, len(labels)) if labels[t] != IGNORE_INDEX]
    dropped = set(rng.sample(eligible, round(share * len(eligible))))
    return [IGNORE_INDEX if t in dropped else lab for t, lab in enumerate(labels)]


def think_close_tokens(offsets: list[tuple[int, int]], answer_start: int) -> tuple[int | None, int | None]:
    """(first, one past the last) token of ``</think>``, which ends at character ``answer_start``: the first is the
    first token reaching past ``</think>``'s first character, the last the one that completes it."""
    close_at = answer_start - len(THINK_CLOSE)
    first = next((i for i, (_, e) in enumerate(offsets) if e > close_at), None)
    end = next((i + 1 for i, (_, e) in enumerate(offsets) if e >= answer_start), None)
    return first, end


def encode_record(tokenizer, record: ReasoningRecord, config: EncodeConfig, index: int = 0,
                  source: str = "records") -> EncodedExample | None:
    """Token ids, aligned labels and segments for one record; ``None`` if truncation left nothing to learn."""
    text = render_conversation(tokenizer, record)
    cot_start, answer_start = segment_char_spans(text, record, source, index)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    segments = token_segments(text, offsets, cot_start, answer_start)
    full_counts = [segments.count(s) for s in (PROMPT, COT, ANSWER)]
    ranges = [(0, len(ids))] if kept_whole(config, index) else kept_ranges(
        len(ids), config, *think_close_tokens(offsets, answer_start))
    ids = [t for a, b in ranges for t in ids[a:b]][:config.max_seq_len]  # the hard cap applies to whole records too
    segments = [s for a, b in ranges for s in segments[a:b]][:config.max_seq_len]

    keep = config.segment_ids
    labels = [tok if seg in keep else IGNORE_INDEX for tok, seg in zip(ids, segments)]
    if config.random_mask > 0:
        labels = random_mask(labels, config.random_mask, random.Random(config.seed * 1_000_003 + index))
    example = EncodedExample(ids, labels, segments, index, len(enc["input_ids"]), full_counts)
    if example.num_supervised == 0:
        if config.on_empty == "error":
            raise DataError(source, index, "at least one supervised token after truncation",
                            f"none (kept {len(ids)} of {example.full_length} tokens, sections {config.sections})")
        return None
    return example


@dataclass
class EncodeResult:
    examples: list[EncodedExample]
    dropped: list[int]  # record indices left with zero supervised tokens


def encode_records(tokenizer, records: list[ReasoningRecord], config: EncodeConfig, source: str, *,
                   indices: list[int] | None = None) -> EncodeResult:
    """Encode all records, each numbered by its index in its file: ``indices[k]`` for ``records[k]`` (records
    selected from a file by ``cotdistill.data.split``), else ``k`` (the whole file)."""
    examples, dropped = [], []
    numbers = range(len(records)) if indices is None else indices
    for i, record in zip(numbers, records, strict=True):
        example = encode_record(tokenizer, record, config, i, source)
        if example is None:
            dropped.append(i)
        else:
            examples.append(example)
    return EncodeResult(examples, dropped)
