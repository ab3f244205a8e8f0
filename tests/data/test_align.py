"""Span alignment across two tokenizers, counted by hand: merges that differ ("12+34" as 1|2|+|34 and 12|+|3|4), a
template that adds a system turn on one side only, a byte-level ``Ġ`` side against a ``▁`` side, and a character
written in two byte tokens."""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from cotdistill.data.align import align_spans, content_pieces
from cotdistill.data.encode import render_conversation
from cotdistill.data.records import ReasoningRecord
from cotdistill.teacher.cross import shared_vocabulary, vocabulary_bytes
from tests.conftest import CHAT_TEMPLATE, SPECIALS, SYSTEM_TEMPLATE

RECORD = ReasoningRecord(prompt="12+34?", cot="12+34 = 46 café", answer="46")


def toy_tokenizer(pattern: str, *, byte_level: bool, template: str, texts: list[str]):
    """A word-level tokenizer whose pieces are the regex's matches (byte-level mapped, or with spaces as ``▁``);
    its vocabulary is every piece of ``texts``, so the split is known by reading the regex."""
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    pre = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]) \
        if byte_level else split
    pieces = {p for text in texts for p, _ in pre.pre_tokenize_str(text.replace(" ", "▁") if not byte_level
                                                                      else text)}
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(pieces) + ["<unk>"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    if byte_level:
        tok.decoder = decoders.ByteLevel()
    else:
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[1:])
    fast.chat_template = template
    return fast


def pair():
    texts = [RECORD.prompt, RECORD.assistant_text(), "system", "user", "assistant", "\n", "You are helpful."]
    # the student: digits one by one except "34"; the teacher: "12" whole, other digits one by one
    student = toy_tokenizer(r"34|\d| ?[^\W\d_]+|\s|.", byte_level=True, template=SYSTEM_TEMPLATE, texts=texts)
    teacher = toy_tokenizer(r"12|\d|▁?[^\W\d_]+|▁|\s|.", byte_level=False, template=CHAT_TEMPLATE, texts=texts)
    return student, teacher


def spans_as_text(student, teacher):
    """Each aligned span as (student tokens, teacher tokens), read back as text."""
    rendered = []
    for tok in (student, teacher):
        text = render_conversation(tok, RECORD)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        rendered.append((enc["input_ids"], enc["offset_mapping"], content_pieces(text, RECORD)))
    (s_ids, s_off, s_pieces), (t_ids, t_off, t_pieces) = rendered
    spans = align_spans(s_off, s_pieces, t_off, t_pieces)

    def words(tok, ids):
        return [tok.convert_tokens_to_string([t]) for t in tok.convert_ids_to_tokens(ids)]

    return [(words(student, s_ids[s.student:s.student + s.student_count]),
             words(teacher, t_ids[s.teacher:s.teacher + s.teacher_count])) for s in spans]


def test_the_prompt_aligns_where_both_tokenizers_cut():
    student, teacher = pair()
    spans = spans_as_text(student, teacher)
    assert spans[:4] == [(["1", "2"], ["12"]), (["+"], ["+"]), (["34"], ["3", "4"]), (["?"], ["?"])]


def test_template_text_never_aligns():
    """The student's template adds a system turn the teacher's lacks; role markers and end-of-turn tokens are
    template too: no span holds any of them."""
    student, teacher = pair()
    text = "".join("".join(s) for s, _ in spans_as_text(student, teacher))
    assert "helpful" not in text and "user" not in text and "<|im" not in text
    assert text == RECORD.prompt + RECORD.assistant_text()


def test_spaces_and_unicode_align_across_byte_level_and_metaspace():
    student, teacher = pair()
    spans = spans_as_text(student, teacher)
    assert ([" café"], [" café"]) in spans  # Ġ-prefixed bytes on one side, ▁ on the other
    assert (["4"], ["4"]) in spans and (["6"], ["6"]) in spans


def test_shared_vocabulary_pairs_tokens_that_write_the_same_bytes():
    student, teacher = pair()
    s_ids, t_ids = shared_vocabulary(student, teacher)
    s_text, t_text = vocabulary_bytes(student), vocabulary_bytes(teacher)
    by_id_s = {i: t for t, i in s_text.items()}
    by_id_t = {i: t for t, i in t_text.items()}
    pairs = {(by_id_s[int(a)], by_id_t[int(b)]) for a, b in zip(s_ids, t_ids)}
    assert all(a == b for a, b in pairs)
    assert {(" café".encode(),) * 2, (b"+", b"+"), (b"4", b"4")} <= pairs
    assert (b"12", b"12") not in pairs and (b"34", b"34") not in pairs  # each lives in one vocabulary only


def test_a_character_in_two_byte_tokens_joins_the_token_before():
    """Byte-level BPE may write "é" as two tokens with the same character offsets: the boundary after the first
    is inside the character, so it is not a boundary; both tokens fall in one span."""
    # offsets as the world tokenizer gives them for " caf" + "Ã" + "©" (each byte token covers the character)
    student_offsets = [(0, 1), (1, 5), (5, 6), (5, 6), (6, 7)]  # "\n", " caf", Ã, ©, "!"
    teacher_offsets = [(0, 1), (1, 6), (6, 7)]  # "\n", " café", "!"
    pieces = [(1, 7)]
    spans = align_spans(student_offsets, pieces, teacher_offsets, pieces)
    assert [(s.student, s.student_count, s.teacher, s.teacher_count) for s in spans] == [(1, 3, 1, 1), (4, 1, 2, 1)]


def test_the_end_of_the_turn_is_a_span_of_its_own():
    """Template text, but both sides mean the same by it: each EOS right after the answer's last character."""
    from cotdistill.teacher.cross import aligned_with_ending

    student, teacher = pair()
    sides = []
    for tok in (student, teacher):
        text = render_conversation(tok, RECORD)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        sides.append((enc["input_ids"], enc["offset_mapping"], content_pieces(text, RECORD), tok.eos_token_id))
    spans = aligned_with_ending(*sides)
    last = spans[-1]
    assert student.convert_ids_to_tokens(sides[0][0][last.student]) == "<|im_end|>"
    assert teacher.convert_ids_to_tokens(sides[1][0][last.teacher]) == "<|im_end|>"
    assert (last.student_count, last.teacher_count) == (1, 1) and len(spans) == len(spans_as_text(student, teacher)) + 1
    no_eos = [(ids, offsets, pieces, None) for ids, offsets, pieces, _ in sides]
    assert aligned_with_ending(*no_eos) == spans[:-1]
