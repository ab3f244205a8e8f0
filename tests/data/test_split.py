"""Which records train and validate: the length filter, the tail or seeded split and the ``max_records`` subset,
checked against hand-derived index lists and against ``datasets``' ``train_test_split`` (the paper's route)."""

from __future__ import annotations

import pytest

from cotdistill.config import ConfigError
from cotdistill.data.encode import EncodeConfig, encode_record, encode_records
from cotdistill.data.records import ReasoningRecord
from cotdistill.data.split import Selection, split_records, templated_lengths, within_limit
from tests.conftest import char_tokenizer

# record i's templated length; those over 8 (positions 1, 3, 7) go with max_tokens 8
LENGTHS = [5, 9, 3, 12, 7, 7, 2, 11, 4, 8]


def paper_split(kept: list[int], n_val: int, seed: int, n_train: int | None = None) -> tuple[list[int], list[int]]:
    """The authors' route: the filtered records as a ``datasets.Dataset``, ``train_test_split(test_size=n_val,
    seed=seed)``, then the first ``n_train`` of the training part; as sorted file indices (train, val)."""
    from datasets import Dataset

    parts = Dataset.from_dict({"index": kept}).train_test_split(test_size=n_val, seed=seed)
    train = list(parts["train"]["index"])
    return sorted(train[:n_train] if n_train else train), sorted(parts["test"]["index"])


def test_without_a_seed_validation_is_the_files_tail_as_before():
    # floor(0.25 * 10) = 2 records: the last two
    assert split_records(10, val_fraction=0.25) == Selection(list(range(8)), [8, 9], [], 10, 8)
    # max_records is the first N of the file (read limit): floor(0.25 * 6) = 1 validates, record 5
    chosen = split_records(10, val_fraction=0.25, max_records=6)
    assert (chosen.train, chosen.val) == ([0, 1, 2, 3, 4], [5])
    assert split_records(4).val == [] and split_records(4).train == [0, 1, 2, 3]


def test_the_length_filter_comes_before_the_tail():
    chosen = split_records(10, lengths=LENGTHS, max_tokens=8, val_size=2)
    # kept: 0 2 4 5 6 8 9 (9, 12 and 11 tokens are over 8; 8 is not); the last two of them validate
    assert chosen.too_long == [1, 3, 7]
    assert (chosen.train, chosen.val) == ([0, 2, 4, 5, 6], [8, 9])
    # without a seed max_records cuts the file first: records 0-5, of which 1 and 3 are too long
    chosen = split_records(10, lengths=LENGTHS, max_tokens=8, val_size=1, max_records=6)
    assert (chosen.train, chosen.val, chosen.too_long) == ([0, 2, 4], [5], [1, 3])


def test_a_seeded_split_is_the_papers_filter_then_train_test_split_then_first_n():
    chosen = split_records(10, lengths=LENGTHS, max_tokens=8, val_size=2, split_seed=42, max_records=3)
    kept = [0, 2, 4, 5, 6, 8, 9]
    assert chosen.too_long == [1, 3, 7]
    assert (chosen.train, chosen.val) == paper_split(kept, 2, 42, n_train=3)
    assert chosen.available == 5 and chosen.read == 10
    # the same lists on every machine: PCG64's permutation of 7 under seed 42 is [3, 2, 6, 4, 1, 5, 0], i.e. the
    # kept records 5 4 | 9 6 2 | 8 0: the first two validate, the next three (max_records) train
    assert (chosen.train, chosen.val) == ([2, 6, 9], [4, 5])
    for n, n_val, seed in ((50, 7, 0), (23, 1, 123), (100, 30, 42)):
        chosen = split_records(n, val_size=n_val, split_seed=seed)
        assert (chosen.train, chosen.val) == paper_split(list(range(n)), n_val, seed)


def test_the_seeded_split_partitions_and_depends_only_on_its_seed():
    a = split_records(40, val_fraction=0.25, split_seed=7)
    assert len(a.val) == 10 and sorted(a.train + a.val) == list(range(40))
    assert a == split_records(40, val_fraction=0.25, split_seed=7)
    assert a.val != split_records(40, val_fraction=0.25, split_seed=8).val
    assert a.val != list(range(30, 40))  # not the tail
    # max_records draws from the training part only: validation is the same with or without it
    sub = split_records(40, val_fraction=0.25, split_seed=7, max_records=5)
    assert sub.val == a.val and len(sub.train) == 5 and set(sub.train) <= set(a.train) and sub.available == 30


def test_a_count_that_leaves_nothing_to_train_on_is_refused():
    with pytest.raises(ConfigError, match="data.val_size 7 leaves no training record: the file has 7 records "
                                          "within data.max_tokens 8"):
        split_records(10, lengths=LENGTHS, max_tokens=8, val_size=7, split_seed=1)
    with pytest.raises(ConfigError, match="val_size 3 leaves no training record"):
        split_records(3, val_size=3)
    with pytest.raises(ValueError, match="max_tokens needs the length of each of the 10 records"):
        split_records(10, max_tokens=8)


def test_within_limit():
    assert within_limit(LENGTHS, 8) == ([0, 2, 4, 5, 6, 8, 9], [1, 3, 7])
    assert within_limit(LENGTHS, 1) == ([], list(range(10)))


# ChatML with one token per character renders a record in 27 tokens of template (<|im_start|> "user\n"
# <|im_end|> "\n" <|im_start|> "assistant\n" <think> "\n" "\n" </think> "\n\n" <|im_end|> "\n" = 1+5+1+1+1+10+1+1+1+1+2
# +1+1) plus one per character of prompt, CoT and answer: "ab", "cd", "e" make 32 (tests/data/test_masks.py).
@pytest.mark.parametrize("cot, tokens", [("cd", 32), ("c" * 70, 100), ("c" * 500, 530)])
def test_a_records_length_is_its_whole_templated_sequence_before_any_truncation(cot, tokens):
    tok = char_tokenizer()
    record = ReasoningRecord("ab", cot, "e")
    assert templated_lengths(tok, [record]) == [tokens]
    # the number encode_record reports as full_length, whatever it then cuts
    lsp = EncodeConfig(truncation="lsp", lsp=0.5, max_seq_len=10)
    assert encode_record(tok, record, lsp).full_length == tokens


def test_lengths_are_the_same_counted_in_chunks():
    tok = char_tokenizer()
    records = [ReasoningRecord("ab", "c" * k, "e") for k in range(1, 8)]
    assert templated_lengths(tok, records, chunk=3) == [30 + k for k in range(1, 8)]


def test_records_are_encoded_with_the_indices_they_are_given():
    tok = char_tokenizer()
    records = [ReasoningRecord("ab", "c" * k, "e") for k in range(1, 4)]
    examples = encode_records(tok, records, EncodeConfig(), "f", indices=[7, 2, 9]).examples
    assert [e.index for e in examples] == [7, 2, 9]
    assert [e.full_length for e in examples] == [31, 32, 33]
    with pytest.raises(ValueError):
        encode_records(tok, records, EncodeConfig(), "f", indices=[1, 2])


def test_the_selection_says_what_it_did():
    chosen = split_records(10, lengths=LENGTHS, max_tokens=8, val_size=2, split_seed=42, max_records=3)
    assert chosen.describe() == ("10 records read, 3 longer than data.max_tokens 8 (dropped); validation: 2 drawn at "
                                 "random (split_seed 42); training: 3 drawn at random of the 5 left (max_records)")
    assert chosen.notes() == {"records_read": 10, "max_tokens": 8, "longer_than_max_tokens": 3,
                              "validation_split": "random", "split_seed": 42, "training_records_available": 5}
    assert split_records(10, val_size=2).describe() == "validation: the last 2 records"
    assert split_records(10).describe() == "validation: none"
    assert split_records(10, split_seed=3).describe("val.jsonl") == "validation: val.jsonl"
