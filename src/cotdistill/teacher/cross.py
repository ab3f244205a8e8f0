"""An online teacher with another tokenizer (``loss.cross_tokenizer``): it reads each record rendered with its own
tokenizer and chat template, and answers at the spans where its text and the student's agree
(:mod:`cotdistill.data.align`; the loss is :mod:`cotdistill.losses_cross`).

The alignments are computed once, before any weights load, for every training and validation example; a row is
found again by (record index, its token ids), so training and validation rows that share an index stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cotdistill.data.align import Span, align_spans, content_pieces, end_of_turn
from cotdistill.data.encode import IGNORE_INDEX, EncodedExample, render_conversation, render_prompt
from cotdistill.data.records import ReasoningRecord
from cotdistill.errors import TrainingError
from cotdistill.losses import CachedRows, OnlineRows, softcap
from cotdistill.losses_cross import CrossRows

RowKey = tuple[int, tuple[int, ...]]  # (record index, the student row's token ids)


@dataclass(frozen=True)
class ExampleAlignment:
    """One student row's teacher: the teacher's token ids (its rendering, cut after the last aligned token) and the
    usable spans (every student token in them supervised, neither side's first token at position 0)."""

    teacher_ids: list[int]
    spans: list[Span]


def row_key(example: EncodedExample) -> RowKey:
    return example.index, tuple(example.input_ids)


def _byte_of_char() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins (GPT-2's mapping): printable Latin-1 bytes stand for themselves, every
    other byte ``b`` for the character ``256 + n``, ``n`` counting those bytes in order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {chr(b): b for b in printable}, 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


BYTE_OF_CHAR = _byte_of_char()


def _token_bytes(token: str, byte_level: bool, special: set[str]) -> bytes | None:
    """The bytes a token writes: byte-level stand-ins read back, ``▁`` as a space, ``<0xNN>`` byte-fallback tokens
    as their byte; ``None`` where it cannot be read (then it is never shared)."""
    if token in special:
        return token.encode()
    if byte_level:
        table = BYTE_OF_CHAR
        return bytes(table[c] for c in token) if all(c in table for c in token) else None
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode()


def vocabulary_bytes(tokenizer) -> dict[bytes, int]:
    """Each token's bytes -> its id (the lowest id where two tokens write the same bytes). Tokens are compared by
    bytes, not decoded text, so that the two halves of a multi-byte character (byte-level BPE writes "é" as two
    tokens) pair with the same halves in another byte-level vocabulary."""
    byte_level = "ByteLevel" in str(tokenizer.backend_tokenizer.decoder)
    special = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()}
    written: dict[bytes, int] = {}
    for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        if token_id < len(tokenizer):
            value = _token_bytes(token, byte_level, special)
            if value:
                written.setdefault(value, token_id)
    return written


def shared_vocabulary(student_tokenizer, teacher_tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(student ids, teacher ids) ``[M]`` of the tokens that write the same bytes in both vocabularies, in
    student-id order."""
    student, teacher = vocabulary_bytes(student_tokenizer), vocabulary_bytes(teacher_tokenizer)
    pairs = sorted((sid, teacher[text]) for text, sid in student.items() if text in teacher)
    if not pairs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    ids = torch.tensor(pairs, dtype=torch.long)
    return ids[:, 0].contiguous(), ids[:, 1].contiguous()


def _encode(tokenizer, record: ReasoningRecord) -> tuple[list[int], list[tuple[int, int]], list[tuple[int, int]]]:
    text = render_conversation(tokenizer, record)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], content_pieces(text, record)


def align_example(student_tokenizer, teacher_tokenizer, record: ReasoningRecord, example: EncodedExample,
                  teacher_positions: int | None = None) -> ExampleAlignment:
    """The teacher's view of one encoded student row. The row must be a lead part of the record's rendering (every
    truncation that keeps a prefix: none, lsp, cut_after_think, a left window, max_seq_len). Spans past the
    teacher's ``teacher_positions`` are left out (the teacher cannot read that far)."""
    student_ids, student_offsets, student_pieces = _encode(student_tokenizer, record)
    if student_ids[:len(example)] != example.input_ids:
        raise TrainingError(f"record {example.index}: loss.cross_tokenizer needs each training row to be the start "
                            "of its record (truncation none, lsp, cut_after_think or a left window); this row is "
                            "not (an ending-keeping truncation, or a right or middle window?)")
    teacher_ids, teacher_offsets, teacher_pieces = _encode(teacher_tokenizer, record)
    spans = aligned_with_ending((student_ids, student_offsets, student_pieces, student_tokenizer.eos_token_id),
                                (teacher_ids, teacher_offsets, teacher_pieces, teacher_tokenizer.eos_token_id))
    reach = teacher_positions or len(teacher_ids)
    return _for_row([s for s in spans if _usable(s, example.labels, len(example))
                     and s.teacher + s.teacher_count <= reach], teacher_ids)


Rendering = tuple[list[int], list[tuple[int, int]], list[tuple[int, int]], int | None]  # ids, offsets, pieces, EOS


def aligned_with_ending(student: Rendering, teacher: Rendering) -> list[Span]:
    """The spans of two renderings, and the end of the turn as one more where both write their EOS right after
    the last content character (:func:`cotdistill.data.align.end_of_turn`)."""
    spans = align_spans(student[1], student[2], teacher[1], teacher[2])
    ends = [end_of_turn(offsets, pieces, ids, eos) for ids, offsets, pieces, eos in (student, teacher)]
    if ends[0] is not None and ends[1] is not None:
        spans.append(Span(ends[0], 1, ends[1], 1))
    return spans


def _for_row(spans: list[Span], teacher_ids: list[int]) -> ExampleAlignment:
    cut = max((s.teacher + s.teacher_count for s in spans), default=0)
    return ExampleAlignment(teacher_ids[:cut], spans)


def align_records(student_tokenizer, teacher_tokenizer, data,
                  teacher_positions: int | None = None) -> dict[RowKey, ExampleAlignment]:
    """Every training and validation row of ``data`` (a ``PreparedData``) aligned, by (record index, its ids)."""
    alignments = {}
    for examples, records in ((data.examples, data.records), (data.val_examples, data.val_records)):
        for example in examples:
            alignments[row_key(example)] = align_example(student_tokenizer, teacher_tokenizer,
                                                         records[example.index], example, teacher_positions)
    return alignments


def _usable(span: Span, labels: list[int], length: int) -> bool:
    """Every student token of the span is in the row and supervised; neither side's first token is position 0."""
    student_end = span.student + span.student_count
    return (span.student >= 1 and span.teacher >= 1 and student_end <= length
            and all(label != IGNORE_INDEX for label in labels[span.student:student_end]))


class SampleAligner:
    """Aligns an on-policy row — a training record's prompt, then the student's sample — with the teacher's
    rendering of the same prompt followed by the same text. The sample's token offsets come from decoding it
    (a sample need not be the tokenizer's own split of its text, so it is never re-tokenized)."""

    def __init__(self, student_tokenizer, teacher_tokenizer, records: dict[int, ReasoningRecord]) -> None:
        self.student, self.teacher, self.records = student_tokenizer, teacher_tokenizer, records

    def align(self, index: int, ids: list[int], labels: list[int]) -> ExampleAlignment:
        record = self.records[index]
        contents = ([record.system] if record.system else []) + [record.prompt]
        prompt = render_prompt(self.student, record.prompt, record.system)
        enc = self.student(prompt, add_special_tokens=False, return_offsets_mapping=True)
        n = len(enc["input_ids"])
        if list(ids[:n]) != list(enc["input_ids"]):
            raise TrainingError(f"record {index}: an on-policy row does not start with the record's prompt")
        eos = self.student.eos_token_id
        body = list(ids[n:-1]) if len(ids) > n and ids[-1] == eos else list(ids[n:])
        text = self.student.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        ends = decoded_ends(self.student, body)
        offsets = [tuple(o) for o in enc["offset_mapping"]] + [
            (len(prompt) + a, len(prompt) + b) for a, b in zip([0, *ends[:-1]], ends)]
        teacher_prompt = render_prompt(self.teacher, record.prompt, record.system)
        t_enc = self.teacher(teacher_prompt + text, add_special_tokens=False, return_offsets_mapping=True)
        teacher_ids = list(t_enc["input_ids"]) + ([self.teacher.eos_token_id] if len(ids) > n + len(body) else [])
        spans = aligned_with_ending(
            (list(ids), offsets, [*content_pieces(prompt, contents), (len(prompt), len(prompt) + len(text))], eos),
            (teacher_ids, [tuple(o) for o in t_enc["offset_mapping"]],
             [*content_pieces(teacher_prompt, contents), (len(teacher_prompt), len(teacher_prompt) + len(text))],
             self.teacher.eos_token_id))
        return _for_row([s for s in spans if _usable(s, labels, len(ids))], teacher_ids)


def decoded_ends(tokenizer, ids: list[int]) -> list[int]:
    """Where each token's text ends in ``decode(ids)``: the decoded length of each prefix, made non-decreasing from
    the right (a prefix cut inside a multi-byte character decodes to stand-ins that the full character replaces,
    so the tokens of one character end where it ends). Naive and quadratic; samples are a few hundred tokens."""
    ends = [len(tokenizer.decode(ids[:k + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False))
            for k in range(len(ids))]
    for k in range(len(ends) - 2, -1, -1):
        ends[k] = min(ends[k], ends[k + 1])
    return ends


class CrossTokenizerTeacher(nn.Module):
    """The teacher with its own tokenizer — its model, or a teacher cache built across tokenizers in its place —
    with its tokenizer's size, the shared vocabulary and every row's alignment. An ``nn.Module`` as
    :class:`cotdistill.teacher.online.OnlineTeacher` is (the model frozen, in eval mode)."""

    def __init__(self, model: nn.Module | None, *, cap: float | None, vocab: int, pad_id: int, temperature: float,
                 mode: str, alignments: dict[RowKey, ExampleAlignment], shared: tuple[torch.Tensor, torch.Tensor],
                 samples: SampleAligner | None = None, cache=None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False) if model is not None else None
        self.cache = cache  # a cotdistill.teacher.cache.TeacherCache whose rows are spans
        self.samples = samples  # on-policy rows are aligned when they are met
        self.cap, self.vocab, self.pad_id, self.temperature, self.mode = cap, vocab, pad_id, temperature, mode
        self.alignments, self.shared = alignments, shared

    @classmethod
    def of_model(cls, model: nn.Module, cap: float | None, teacher_tokenizer, loss,
                 alignments: dict[RowKey, ExampleAlignment], shared: tuple[torch.Tensor, torch.Tensor],
                 samples: SampleAligner | None = None, mode: str | None = None) -> CrossTokenizerTeacher:
        """The teacher model with its tokenizer's rows (padding rows past them cut, as the loss's rule is), its
        logit soft-cap ``cap`` and the run's ``loss`` temperature and method (``mode`` overrides the method)."""
        from cotdistill.models import shared_vocab_size

        rows = model.config.vocab_size
        return cls(model, cap=cap, vocab=shared_vocab_size(rows, rows, len(teacher_tokenizer)),
                   pad_id=teacher_tokenizer.pad_token_id, temperature=loss.temperature,
                   mode=mode or loss.cross_tokenizer, alignments=alignments, shared=shared, samples=samples)

    def covers(self, examples: list[EncodedExample]) -> bool:
        known = all(row_key(e) in self.alignments for e in examples)
        return known and (self.cache is None or self.cache.covers(examples))

    @torch.no_grad()
    def inputs(self, tensors: dict[str, torch.Tensor | None], indices: list[int],
               targets_mask: torch.Tensor) -> CrossRows:
        """The teacher at the micro-batch's spans. The student rows are numbered as the loss sees them: the true
        entries of ``targets_mask [B, T − 1]`` in row-major order (token ``i`` is predicted at position ``i − 1``)."""
        device = targets_mask.device
        number = torch.full(targets_mask.shape, -1, dtype=torch.long, device=device)
        number[targets_mask] = torch.arange(int(targets_mask.sum()), device=device)
        lengths = tensors["attention_mask"].sum(1).tolist()
        aligned = [self._alignment(index, tensors["input_ids"][b, :lengths[b]].tolist(),
                                   tensors["labels"][b, :lengths[b]].tolist()) for b, index in enumerate(indices)]
        layout = _SpanLayout.of(aligned, number.cpu())
        if self.mode == "uld":  # plain ULD compares the first tokens' distributions only: nothing is merged
            layout.continued = layout.continued_span = _long([])
        at_starts, span_logp = (self._from_cache(indices, layout, device) if self.cache is not None
                                else self._from_model(aligned, layout, device))
        return CrossRows(at_starts, self.vocab, layout.first.to(device), span_logp, layout.starts.to(device),
                         layout.continued.to(device), layout.continued_span.to(device),
                         self.shared[0].to(device), self.shared[1].to(device), self.mode)

    def _alignment(self, index: int, ids: list[int], labels: list[int]) -> ExampleAlignment:
        found = self.alignments.get((index, tuple(ids)))
        if found is not None:
            return found
        if self.samples is None:
            raise TrainingError(f"record {index}: a row the cross-tokenizer teacher has not aligned")
        return self.samples.align(index, ids, labels)

    def _from_model(self, aligned: list[ExampleAlignment], layout: _SpanLayout,
                    device: torch.device) -> tuple[OnlineRows, torch.Tensor]:
        longest = max(1, max(len(a.teacher_ids) for a in aligned))
        ids = torch.full((len(aligned), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, a in enumerate(aligned):
            ids[b, :len(a.teacher_ids)] = torch.tensor(a.teacher_ids, dtype=torch.long)
            mask[b, :len(a.teacher_ids)] = 1
        hidden = self.model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       use_cache=False).last_hidden_state
        starts = hidden[layout.teacher_start[:, 0], layout.teacher_start[:, 1]]
        at_starts = OnlineRows(starts, self.model.get_output_embeddings().weight, self.cap)
        if self.mode == "uld":  # plain ULD reads no span probability: the teacher's rows past each start are not run
            return at_starts, torch.zeros(layout.first.shape[0], dtype=torch.float32, device=device)
        return at_starts, self._span_logp(hidden, layout, device)

    def _from_cache(self, indices: list[int], layout: _SpanLayout,
                    device: torch.device) -> tuple[CachedRows, torch.Tensor]:
        ids, logp, tail, span_logp, first = self.cache.span_rows(indices)
        if not torch.equal(first, layout.first):  # spans of other text, or in another order: the wrong teacher
            raise TrainingError(f"teacher cache {self.cache.root}: its spans for records {indices} are not the "
                                     "spans this run aligns; rebuild it for this run")
        return CachedRows(ids.to(device), logp.to(device), tail.to(device)), span_logp.to(device)

    @torch.no_grad()
    def logprobs_by_record(self, tensors: dict[str, torch.Tensor | None], examples: list[EncodedExample],
                           targets_mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """What a cache stores, per record of a batch: the teacher's log-probs at its span starts ``[n, V_t]``, the
        spans' log-probs ``[n]`` and first teacher tokens ``[n]`` (at the teacher's temperature)."""
        rows = self.inputs(tensors, [e.index for e in examples], targets_mask)
        logp = rows.teacher_logp(torch.arange(rows.first.shape[0], device=rows.first.device), self.temperature)
        counts = [len(self._alignment(e.index, e.input_ids, e.labels).spans) for e in examples]
        return list(zip(logp.split(counts), rows.span_logp.split(counts), rows.first.split(counts)))

    def _span_logp(self, hidden: torch.Tensor, layout: _SpanLayout, device: torch.device) -> torch.Tensor:
        """log p_T of each span's text at the loss temperature: the teacher's log-probs of its tokens summed."""
        span_logp = torch.zeros(layout.first.shape[0], dtype=torch.float32, device=device)
        rows, targets, owner = (t.to(device) for t in (layout.teacher_rows, layout.teacher_targets,
                                                       layout.teacher_row_span))
        head = self.model.get_output_embeddings().weight[:self.vocab]
        for start in range(0, rows.shape[0], 1024):
            sl = slice(start, start + 1024)
            z = softcap(hidden[rows[sl, 0], rows[sl, 1]] @ head.T, self.cap).float() / self.temperature
            logp = F.log_softmax(z, -1).gather(1, targets[sl, None])[:, 0]
            span_logp.index_add_(0, owner[sl], logp)
        return span_logp


@dataclass
class _SpanLayout:
    """Index tensors for a micro-batch's spans, in the order of the student rows that start them."""

    starts: torch.Tensor  # [S] student row of each span's first token
    first: torch.Tensor  # [S] teacher's first token
    teacher_start: torch.Tensor  # [S, 2] (batch row, position) of the teacher state predicting it
    continued: torch.Tensor  # [C]
    continued_span: torch.Tensor  # [C]
    teacher_rows: torch.Tensor  # [R, 2] every teacher state predicting a token of a span
    teacher_targets: torch.Tensor  # [R] that token
    teacher_row_span: torch.Tensor  # [R] its span

    @staticmethod
    def of(aligned: list[ExampleAlignment], number: torch.Tensor) -> _SpanLayout:
        starts, first, teacher_start, continued, continued_span = [], [], [], [], []
        teacher_rows, teacher_targets, teacher_row_span = [], [], []
        for b, a in enumerate(aligned):
            for span in a.spans:
                k = len(starts)
                starts.append(int(number[b, span.student - 1]))
                first.append(a.teacher_ids[span.teacher])
                teacher_start.append((b, span.teacher - 1))
                for q in range(1, span.student_count):
                    continued.append(int(number[b, span.student + q - 1]))
                    continued_span.append(k)
                for q in range(span.teacher_count):
                    teacher_rows.append((b, span.teacher + q - 1))
                    teacher_targets.append(a.teacher_ids[span.teacher + q])
                    teacher_row_span.append(k)
        return _SpanLayout(_long(starts), _long(first), _long(teacher_start).reshape(-1, 2), _long(continued),
                           _long(continued_span), _long(teacher_rows).reshape(-1, 2), _long(teacher_targets),
                           _long(teacher_row_span))


def _long(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)
