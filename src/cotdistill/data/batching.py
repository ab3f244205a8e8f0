"""Length-grouped batches with dynamic padding, so a batch of truncated records costs what its tokens cost."""

from __future__ import annotations

import random

import torch

from cotdistill.data.encode import IGNORE_INDEX, EncodedExample


def length_grouped_batches(lengths: list[int], batch_size: int, *, seed: int, epoch: int = 0,
                           group_factor: int = 50) -> list[list[int]]:
    """Shuffle, sort by length inside mega-batches of ``batch_size * group_factor``, cut into batches, shuffle them.

    Deterministic in (seed, epoch), so a resumed run sees the same order. Similar lengths share a batch, which
    keeps padding small; shuffling the batches keeps the order of lengths random across training.
    """
    rng = random.Random(seed * 7919 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = max(batch_size * group_factor, batch_size)
    batches = []
    for i in range(0, len(order), mega):
        chunk = sorted(order[i:i + mega], key=lambda j: -lengths[j])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[EncodedExample], pad_id: int, *, pad_to_multiple_of: int | None = None,
            padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad to the longest example (rounded up to a multiple if asked).

    The attention mask and the padded labels come from each example's length, never from comparing ids with
    ``pad_id``: with pad == EOS that comparison would hide the real end-of-turn token from the labels.
    """
    longest = max(len(e) for e in examples)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    n = len(examples)
    input_ids = torch.full((n, longest), pad_id, dtype=torch.long)
    labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, longest), dtype=torch.long)
    for row, ex in enumerate(examples):
        k = len(ex)
        cols = slice(0, k) if padding_side == "right" else slice(longest - k, longest)
        input_ids[row, cols] = torch.tensor(ex.input_ids)
        labels[row, cols] = torch.tensor(ex.labels)
        attention_mask[row, cols] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
