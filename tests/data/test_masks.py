"""Masks equal the segment spans, derived by hand with a one-token-per-character tokenizer."""

from __future__ import annotations

import pytest
import torch

from cotdistill.data.batching import collate
from cotdistill.data.encode import (
    ANSWER,
    COT,
    IGNORE_INDEX,
    PROMPT,
    SECTION_ALIASES,
    EncodeConfig,
    encode_record,
    parse_sections,
)
from cotdistill.data.records import DataError, ReasoningRecord
from tests.conftest import SYSTEM_TEMPLATE, char_tokenizer

REC = ReasoningRecord(prompt="ab", cot="cd", answer="e")


def expected_segments(think_special: bool, system: bool = False) -> list[int]:
    """Hand-derived segments of the rendered ChatML text, one entry per token."""
    head = (["<|im_start|>"] + list("system\nYou are helpful.") + ["<|im_end|>", "\n"]) if system else []
    prompt = head + ["<|im_start|>"] + list("user\nab") + ["<|im_end|>", "\n", "<|im_start|>"] + list("assistant\n")
    think_open = ["<think>"] if think_special else list("<think>")
    think_close = ["</think>"] if think_special else list("</think>")
    cot = think_open + list("\ncd\n") + think_close
    answer = list("\n\ne") + ["<|im_end|>", "\n"]
    return [PROMPT] * len(prompt) + [COT] * len(cot) + [ANSWER] * len(answer)


# the paper's six allocations, written out here rather than read from the module's table
ALLOCATIONS = {"promptcotAns": {PROMPT, COT, ANSWER}, "cotAns": {COT, ANSWER}, "cot": {COT}, "ans": {ANSWER},
               "promptAns": {PROMPT, ANSWER}, "promptCot": {PROMPT, COT}}


def test_the_six_allocations_are_the_papers():
    assert set(SECTION_ALIASES) == set(ALLOCATIONS)
    assert {name: parse_sections(name) for name in ALLOCATIONS} == ALLOCATIONS


@pytest.mark.parametrize("think_special", [True, False])
@pytest.mark.parametrize("sections", [*sorted(ALLOCATIONS), ["prompt", "answer"]])
def test_labels_equal_segment_spans(think_special, sections):
    tok = char_tokenizer(think_special)
    ex = encode_record(tok, REC, EncodeConfig(sections=sections))
    segments = expected_segments(think_special)
    assert ex.segments == segments
    keep = ALLOCATIONS[sections] if isinstance(sections, str) else {PROMPT, ANSWER}
    assert ex.labels == [t if s in keep else IGNORE_INDEX for t, s in zip(ex.input_ids, segments)]
    # the answer's end-of-turn token is supervised whenever the answer is
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert (ex.labels[-2] == eot) == (ANSWER in keep)


def test_template_with_system_prompt_keeps_spans():
    tok = char_tokenizer(True, SYSTEM_TEMPLATE)
    ex = encode_record(tok, REC, EncodeConfig(sections="cot"))
    assert ex.segments == expected_segments(True, system=True)


def test_cot_markers_are_cot_tokens():
    tok = char_tokenizer(True)
    ex = encode_record(tok, REC, EncodeConfig(sections="cot"))
    supervised = tok.convert_ids_to_tokens([t for t in ex.labels if t != IGNORE_INDEX])
    assert supervised == ["<think>", "\n", "c", "d", "\n", "</think>"]


# REC renders to 32 tokens by hand: prompt 21 (<|im_start|> "user\nab" <|im_end|> "\n" <|im_start|>
# "assistant\n"), CoT 6 (<think> "\ncd\n" </think>), answer 5 ("\n\ne" <|im_end|> "\n"). A CoT of 70
# characters instead of 2 makes 100.
@pytest.mark.parametrize("cot, lsp, kept", [
    ("cd", 0.1, 3), ("cd", 0.25, 8), ("cd", 0.29, 9), ("cd", 0.5, 16), ("cd", 0.75, 24), ("cd", 1.0, 32),
    ("c" * 70, 0.29, 29),  # 0.29 · 100 is 28.999… in floats: still 29 tokens
    ("c" * 70, 0.02, 2),
])
def test_lsp_keeps_floor_of_fraction(cot, lsp, kept):
    tok = char_tokenizer()
    record = ReasoningRecord(REC.prompt, cot, REC.answer)
    full = encode_record(tok, record, EncodeConfig())
    ex = encode_record(tok, record, EncodeConfig(truncation="lsp", lsp=lsp), index=0)
    assert len(full.input_ids) == ex.full_length == (32 if cot == "cd" else 100)
    assert len(ex.input_ids) == kept
    assert ex.input_ids == full.input_ids[:kept]


def test_a_lead_span_is_never_empty():
    from cotdistill.data.encode import kept_ranges

    assert kept_ranges(100, EncodeConfig(truncation="lsp", lsp=0.001), None, None) == [(0, 1)]
    assert kept_ranges(100, EncodeConfig(truncation="window", lsp=0.001, window="right"), None, None) == [(99, 100)]
    assert kept_ranges(100, EncodeConfig(truncation="cut_after_think", lsp=0.001), 49, 50) == [(0, 1)]
    assert kept_ranges(100, EncodeConfig(truncation="cut_after_think", lsp=0.29), 99, 100) == [(0, 29)]  # not 28
    # an ending longer than the budget is kept whole, with one lead token
    assert kept_ranges(100, EncodeConfig(truncation="lsp_keep_answer", lsp=0.1), 80, 81) == [(0, 1), (80, 100)]


# A record with a 40-character thought, counted by hand under the one-token-per-character tokenizer:
# prompt 20 tokens (<|im_start|>, "user\nq" = 6, <|im_end|>, "\n", <|im_start|>, "assistant\n" = 10),
# CoT <think> + "\n" + 40 x + "\n" + </think> (44 tokens with the markers special, 57 spelled out),
# answer "\n\ny" + <|im_end|> + "\n" (5): n = 69 (special) or 82; LSP 0.5 keeps 34 or 41.
LONG = ReasoningRecord(prompt="q", cot="x" * 40, answer="y")
PROMPT_TEXT = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
ENDING_TEXT = "</think>\n\ny<|im_end|>\n"


@pytest.mark.parametrize("think_special, n, xs", [(True, 69, 6), (False, 82, 0)])
def test_keep_answer_spends_the_lsp_budget_on_the_lead_and_the_whole_ending(think_special, n, xs):
    # budget floor(n/2) = 34 or 41; the ending takes 6 (</think> special) or 13 tokens, the lead the rest:
    # 20 prompt + <think> (1 or 7) + "\n" + xs characters of the thought
    tok = char_tokenizer(think_special)
    ex = encode_record(tok, LONG, EncodeConfig(truncation="lsp_keep_answer", lsp=0.5))
    lsp = encode_record(tok, LONG, EncodeConfig(truncation="lsp", lsp=0.5))
    assert ex.full_length == n and len(ex) == len(lsp) == n // 2  # the same cost as LSP 0.5
    assert "".join(tok.convert_ids_to_tokens(ex.input_ids)) == PROMPT_TEXT + "<think>\n" + "x" * xs + ENDING_TEXT
    ending = 6 if think_special else 13
    assert ex.segments[-ending:] == [COT] * (ending - 5) + [ANSWER] * 5  # </think> is the thought's, as always
    assert all(label != IGNORE_INDEX for label in ex.labels[-ending:])  # and the ending is trained


def test_keep_tail_keeps_the_last_k_tokens_within_the_budget():
    tok = char_tokenizer(True)
    ex = encode_record(tok, LONG, EncodeConfig(truncation="lsp_keep_tail", lsp=0.5, keep_tail=3))
    # 34 = a lead of 31 (20 prompt, <think>, "\n", 9 x) + the last 3: "y", <|im_end|>, "\n"
    assert tok.convert_ids_to_tokens(ex.input_ids) == [*tok.convert_ids_to_tokens(ex.input_ids[:31]), "y",
                                                       "<|im_end|>", "\n"]
    assert "".join(tok.convert_ids_to_tokens(ex.input_ids[:31])) == PROMPT_TEXT + "<think>\n" + "x" * 9


def test_keeping_the_ending_at_lsp_one_or_a_long_tail_keeps_the_record_whole():
    tok = char_tokenizer(True)
    whole = encode_record(tok, LONG, EncodeConfig())
    for cfg in (EncodeConfig(truncation="lsp_keep_answer"), EncodeConfig(truncation="lsp_keep_tail", keep_tail=500,
                                                                            lsp=0.5)):
        assert encode_record(tok, LONG, cfg).input_ids == whole.input_ids


def test_max_seq_len_caps_what_the_ending_modes_keep():
    tok = char_tokenizer(True)
    ex = encode_record(tok, LONG, EncodeConfig(truncation="lsp_keep_answer", lsp=0.5, max_seq_len=30))
    assert "".join(tok.convert_ids_to_tokens(ex.input_ids)) == PROMPT_TEXT + "<think>\n" + "x" * 6 + "</think>\n"


@pytest.mark.parametrize("kwargs, message", [
    (dict(truncation="lsp_keep_tail", lsp=0.5), "keep_tail"),
    (dict(truncation="lsp", lsp=0.5, keep_tail=4), "keep_tail"),
    (dict(truncation="lsp_keep_tail", lsp=0.5, keep_tail=-1), "keep_tail"),
])
def test_keep_tail_goes_with_its_mode(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EncodeConfig(**kwargs)


def test_untruncated_and_at_lsp():
    base = EncodeConfig(sections="cotAns", truncation="lsp_keep_tail", lsp=0.5, keep_tail=8, full_share=0.2,
                        random_mask=0.1, max_seq_len=64)
    assert base.untruncated() == EncodeConfig(sections="cotAns")
    assert base.at_lsp(0.25) == EncodeConfig(sections="cotAns", truncation="lsp_keep_tail", lsp=0.25, keep_tail=8,
                                             full_share=0.2, random_mask=0.1, max_seq_len=64)
    assert base.at_lsp(1.0) == base.untruncated()
    window = EncodeConfig(truncation="window", window="right", lsp=0.5)
    assert window.at_lsp(0.25) == EncodeConfig(truncation="lsp", lsp=0.25)


@pytest.mark.parametrize("cot, window, start, end", [
    ("cd", "left", 0, 16), ("cd", "middle", 8, 24), ("cd", "right", 16, 32),  # n = 32, keep 16
    ("cde", "left", 0, 16), ("cde", "middle", 8, 24), ("cde", "right", 17, 33),  # n = 33, keep 16
])
def test_window_keeps_the_right_tokens(cot, window, start, end):
    tok = char_tokenizer()
    record = ReasoningRecord(REC.prompt, cot, REC.answer)
    full = encode_record(tok, record, EncodeConfig())
    ex = encode_record(tok, record, EncodeConfig(truncation="window", lsp=0.5, window=window))
    assert ex.input_ids == full.input_ids[start:end]
    assert ex.segments == full.segments[start:end]


@pytest.mark.parametrize("lsp, cap, kept", [(1.0, 10, 10), (0.5, 10, 10), (0.5, 20, 16), (0.25, 20, 8)])
def test_max_seq_len_caps_after_the_lead_span(lsp, cap, kept):
    tok = char_tokenizer()
    full = encode_record(tok, REC, EncodeConfig())
    truncation = "lsp" if lsp < 1 else "none"
    ex = encode_record(tok, REC, EncodeConfig(truncation=truncation, lsp=lsp, max_seq_len=cap))
    assert ex.input_ids == full.input_ids[:kept]


def straddling_tokenizer():
    """Tokens that cross segment boundaries, as SentencePiece's leading-space pieces and merged ``">\n"`` do:
    ``"\n<think>\n"`` spans P and CoT, ``"\n</think>\n\ne"`` spans CoT and A."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.conftest import CHARS, SPECIALS

    merged = ["\n<think>\n", "\n</think>\n\ne"]
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS + merged + ["<unk>"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n<think>\n|\n</think>\n\ne|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[1:])
    fast.chat_template = char_tokenizer().chat_template
    return fast


def test_a_token_across_a_boundary_belongs_to_the_segment_of_its_first_visible_character():
    tok = straddling_tokenizer()
    ex = encode_record(tok, REC, EncodeConfig(sections="cot"))
    pieces = tok.convert_ids_to_tokens(ex.input_ids)
    prompt = ["<|im_start|>", *"user\nab", "<|im_end|>", "\n", "<|im_start|>", *"assistant"]
    assert pieces == [*prompt, "\n<think>\n", "c", "d", "\n</think>\n\ne", "<|im_end|>", "\n"]
    # "\n<think>\n": its first visible character opens the CoT; "\n</think>\n\ne" closes it (and carries the
    # answer's first character, which therefore is trained as CoT: the rule's stated cost)
    assert ex.segments == [PROMPT] * len(prompt) + [COT] * 4 + [ANSWER] * 2
    supervised = [p for p, label in zip(pieces, ex.labels) if label != IGNORE_INDEX]
    assert supervised == ["\n<think>\n", "c", "d", "\n</think>\n\ne"]
    cut = encode_record(tok, REC, EncodeConfig(truncation="cut_after_think"))
    assert tok.convert_ids_to_tokens(cut.input_ids)[-1] == "\n</think>\n\ne"


@pytest.mark.parametrize("think_special", [True, False])
def test_cut_after_think_ends_at_think_close(think_special):
    tok = char_tokenizer(think_special)
    ex = encode_record(tok, REC, EncodeConfig(truncation="cut_after_think"))
    assert tok.decode(ex.input_ids).endswith("</think>")
    assert ANSWER not in ex.segments


def test_zero_supervised_tokens_is_dropped_or_an_error():
    tok = char_tokenizer()
    cfg = dict(sections="ans", truncation="lsp", lsp=0.3)
    assert encode_record(tok, REC, EncodeConfig(**cfg)) is None
    with pytest.raises(DataError, match="record 7.*at least one supervised token"):
        encode_record(tok, REC, EncodeConfig(**cfg, on_empty="error"), index=7)


@pytest.mark.parametrize("cot_chars, share, dropped", [
    # supervised CoT tokens, by hand: <think>, newline, the characters, newline, </think>
    (400, 0.3, 121), (401, 0.3, 122), (7, 0.5, 6),  # 404·0.3 = 121.2; 405·0.3 = 121.5 → 122 (even); 5.5 → 6
    (1, 0.1, 0),  # 5 · 0.1 = 0.5 → 0 (half to even)
])
def test_random_mask_ignores_exactly_the_rounded_share(cot_chars, share, dropped):
    tok = char_tokenizer()
    rec = ReasoningRecord("q", "x" * cot_chars, "y")
    full = encode_record(tok, rec, EncodeConfig(sections="cot"))
    assert full.num_supervised == cot_chars + 4  # <think>, two newlines, </think>
    masked = encode_record(tok, rec, EncodeConfig(sections="cot", random_mask=share, seed=1), index=3)
    assert full.num_supervised - masked.num_supervised == dropped
    # only supervised positions are masked, never a prompt or answer token
    assert all(m in (f, IGNORE_INDEX) for m, f in zip(masked.labels, full.labels))


def test_random_mask_is_seeded_per_record():
    tok = char_tokenizer()
    rec = ReasoningRecord("q", "x" * 400, "y")
    cfg = EncodeConfig(sections="cot", random_mask=0.3, seed=1)
    a, again = (encode_record(tok, rec, cfg, index=3) for _ in range(2))
    other_record = encode_record(tok, rec, cfg, index=4)
    other_seed = encode_record(tok, rec, EncodeConfig(sections="cot", random_mask=0.3, seed=2), index=3)
    assert a.labels == again.labels
    assert a.labels != other_record.labels and a.labels != other_seed.labels


@pytest.mark.parametrize("lsp", [0.5, 0.3])
def test_cut_after_think_then_lsp_keeps_the_lead_share_of_the_cut_sequence(lsp):
    import math

    tok = char_tokenizer()
    rec = ReasoningRecord("abc", "d" * 20, "e" * 30)
    cut = encode_record(tok, rec, EncodeConfig(truncation="cut_after_think"))
    both = encode_record(tok, rec, EncodeConfig(truncation="cut_after_think", lsp=lsp))
    assert len(both) == math.floor(lsp * len(cut))
    assert both.input_ids == cut.input_ids[:len(both)]


def test_padding_with_pad_equal_to_eos_keeps_eos_label():
    tok = char_tokenizer()
    tok.pad_token = tok.eos_token  # the classic trap
    short = encode_record(tok, ReasoningRecord("a", "b", "c"), EncodeConfig(sections="ans"))
    long = encode_record(tok, ReasoningRecord("aaaa", "bbbb", "cccc"), EncodeConfig(sections="ans"))
    batch = collate([short, long], tok.pad_token_id, pad_to_multiple_of=8)
    assert batch["input_ids"].shape[1] % 8 == 0
    eot = tok.eos_token_id
    row = batch["labels"][0]
    assert row[len(short) - 2] == eot  # the real end-of-turn token stays a label
    assert (row[len(short):] == IGNORE_INDEX).all()
    assert batch["attention_mask"][0].sum() == len(short)
    assert torch.equal(batch["labels"][1][:len(long)], torch.tensor(long.labels))


def test_template_that_drops_the_think_markers_is_an_error():
    tok = char_tokenizer(True, "{%- for m in messages %}{{ m['content'] | replace('<think>', '') }}{%- endfor %}")
    with pytest.raises(DataError, match="markers"):
        encode_record(tok, REC, EncodeConfig())


def test_bad_sections_and_ranges_are_errors():
    with pytest.raises(ValueError, match="sections"):
        parse_sections("everything")
    with pytest.raises(ValueError, match=r"lsp must be in \(0, 1\]"):
        EncodeConfig(lsp=1.5)


def test_the_inference_prompt_ends_with_the_assistant_header():
    from cotdistill.data.encode import render_prompt

    tok = char_tokenizer()
    assert render_prompt(tok, "ab") == "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(tok, "ab", system="S") == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n"
                                                    "<|im_start|>assistant\n")


def test_full_share_keeps_a_seeded_share_of_records_whole_and_truncates_the_rest():
    from cotdistill.data.encode import encode_records
    from cotdistill.world import world_records

    tok = char_tokenizer()
    records = world_records("train", "teacher", 200, min_steps=2, max_steps=2)
    config = EncodeConfig(truncation="lsp", lsp=0.5, full_share=0.3)
    examples = encode_records(tok, records, config, "world").examples
    whole = {e.index for e in examples if len(e) == e.full_length}
    assert all(len(e) == e.full_length // 2 for e in examples if e.index not in whole)  # floor(0.5 n) otherwise
    assert 0.2 < len(whole) / len(examples) < 0.4
    again = encode_records(tok, records, config, "world").examples
    assert {e.index for e in again if len(e) == e.full_length} == whole  # the same records, run after run
    other = encode_records(tok, records, EncodeConfig(truncation="lsp", lsp=0.5, full_share=0.3, seed=1), "w")
    assert {e.index for e in other.examples if len(e) == e.full_length} != whole
    with pytest.raises(ValueError, match="full_share 0.3 has no effect"):
        EncodeConfig(full_share=0.3)
    with pytest.raises(ValueError, match="full_share must be in"):
        EncodeConfig(truncation="lsp", lsp=0.5, full_share=1.0)
