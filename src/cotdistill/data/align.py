"""Where two tokenizers' renderings of one conversation say the same text: the aligned *spans* that cross-tokenizer
distillation compares (``loss.cross_tokenizer``).

Each side renders the record with its own tokenizer and chat template. Only the record's own text — each message's
content, found verbatim in the rendered string — is common to both; template text (role markers, a default system
prompt, end-of-turn tokens) exists on one side's terms only and never aligns. Within one message's content, a token
covers the characters from the end of the token before it to its own end (byte-level BPE offsets put a token's
leading space inside it; a multi-byte character split over several tokens gives the later ones zero width, and
they join the token before). A position is a *common boundary* when a token ends there on both sides; a span runs
from one common boundary to the next, and holds ``k`` student and ``l`` teacher tokens that spell the same text.

Naive equivalent: decode both token sequences to the same string and cut it wherever both sides cut it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from cotdistill.data.records import ReasoningRecord


@dataclass(frozen=True)
class Span:
    """Student tokens ``[student, student + student_count)`` and teacher tokens ``[teacher, teacher +
    teacher_count)`` (indices into each side's rendered token sequence) spell the same text."""

    student: int
    student_count: int
    teacher: int
    teacher_count: int


def content_pieces(text: str, record: ReasoningRecord | list[str]) -> list[tuple[int, int]]:
    """The ``[start, end)`` character range of each message's content (a record's messages, or the contents
    given) in the rendered ``text``, found in order; a content the template altered (not found verbatim) is left
    out."""
    contents = [m["content"] for m in record.messages()] if isinstance(record, ReasoningRecord) else record
    pieces, cursor = [], 0
    for content in contents:
        at = text.find(content, cursor) if content else -1
        if at >= 0:
            pieces.append((at, at + len(content)))
            cursor = at + len(content)
    return pieces


def token_boundaries(offsets: list[tuple[int, int]], pieces: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """``(piece, character offset in it) -> index of the last token ending there``: offset 0 where any token (a
    template token, usually) ends at the piece's first character, and every end of a token that lies inside the
    piece (it covers from the previous token's end to its own)."""
    ends: dict[tuple[int, int], int] = {}
    for p, (start, end) in enumerate(pieces):
        previous_end = -1
        for i, (_, token_end) in enumerate(offsets):
            if token_end == start or (previous_end >= start and token_end <= end):
                ends[(p, token_end - start)] = i  # a later zero-width token overwrites: the last one ending here
            previous_end = token_end
    return ends


def align_spans(student_offsets: list[tuple[int, int]], student_pieces: list[tuple[int, int]],
                teacher_offsets: list[tuple[int, int]], teacher_pieces: list[tuple[int, int]]) -> list[Span]:
    """The spans between consecutive common boundaries, piece by piece, in order (see the module docstring).
    ``*_offsets``: each side's token character offsets into its own rendered text; ``*_pieces``: the same
    messages' content ranges in that text (:func:`content_pieces`; both lists name the same messages)."""
    if len(student_pieces) != len(teacher_pieces):
        return []
    s_ends = token_boundaries(student_offsets, student_pieces)
    t_ends = token_boundaries(teacher_offsets, teacher_pieces)
    spans = []
    for p in range(len(student_pieces)):
        common = sorted(pos for (q, pos) in s_ends if q == p and (q, pos) in t_ends)
        for a, b in pairwise(common):
            s_from, t_from = s_ends[(p, a)] + 1, t_ends[(p, a)] + 1
            spans.append(Span(s_from, s_ends[(p, b)] - s_from + 1, t_from, t_ends[(p, b)] - t_from + 1))
    return spans


def end_of_turn(offsets: list[tuple[int, int]], pieces: list[tuple[int, int]], ids: list[int],
                eos_id: int | None) -> int | None:
    """The index of the end-of-turn token (``eos_id``) written right after the last piece's last character, or
    ``None``. It is template text, yet both sides mean the same by it — the answer is over — so where both write
    one there, the two form a span of their own: the student learns when to stop from the teacher."""
    if not pieces or eos_id is None:
        return None
    last = token_boundaries(offsets, pieces).get((len(pieces) - 1, pieces[-1][1] - pieces[-1][0]))
    if last is None or last + 1 >= len(ids) or ids[last + 1] != eos_id:
        return None
    return last + 1
