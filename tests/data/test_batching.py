"""Length-grouped batches and padding, against hand-written expectations."""

from __future__ import annotations

import torch

from cotdistill.data.batching import collate, length_grouped_batches
from cotdistill.data.encode import IGNORE_INDEX, EncodedExample


def _example(ids, labels, index=0):
    return EncodedExample(ids, labels, [0] * len(ids), index, len(ids))


def test_every_index_once_in_batches_of_the_asked_size():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11]
    batches = length_grouped_batches(lengths, 3, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(11))
    assert sorted(len(b) for b in batches) == [2, 3, 3, 3]


def test_similar_lengths_share_a_batch_inside_a_mega_batch():
    lengths = list(range(40))
    batches = length_grouped_batches(lengths, 4, seed=0, group_factor=10)  # one mega-batch: sorted, then cut
    # sorted longest first and cut into fours: each batch holds four consecutive lengths
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == [list(range(k, k + 4)) for k in range(0, 40, 4)]


def test_order_is_fixed_by_seed_and_epoch_and_changes_with_them():
    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]
    same = length_grouped_batches(lengths, 2, seed=3, epoch=1)
    assert same == length_grouped_batches(lengths, 2, seed=3, epoch=1)
    assert same != length_grouped_batches(lengths, 2, seed=3, epoch=2)
    assert same != length_grouped_batches(lengths, 2, seed=4, epoch=1)


def test_collate_pads_right_and_left_by_length_not_by_id():
    eos = 7  # the pad id is the end-of-turn id: padding must come from lengths
    a, b = _example([1, 2, eos], [IGNORE_INDEX, 2, eos]), _example([4, eos], [IGNORE_INDEX, eos], 1)
    right = collate([a, b], pad_id=eos)
    assert right["input_ids"].tolist() == [[1, 2, eos], [4, eos, eos]]
    assert right["labels"].tolist() == [[IGNORE_INDEX, 2, eos], [IGNORE_INDEX, eos, IGNORE_INDEX]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    left = collate([a, b], pad_id=0, padding_side="left")
    assert left["input_ids"].tolist() == [[1, 2, eos], [0, 4, eos]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_pad_to_multiple_of_rounds_up_only():
    a = _example([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert collate([a], pad_id=0, pad_to_multiple_of=4)["input_ids"].shape == torch.Size([1, 8])
    assert collate([a], pad_id=0, pad_to_multiple_of=5)["input_ids"].shape == torch.Size([1, 5])
