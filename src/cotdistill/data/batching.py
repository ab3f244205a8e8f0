"""Length-grouped batches with dynamic padding, so a batch of truncated records costs what its tokens cost; and the
plan of which micro-batches each optimizer step reads (:class:`BatchPlan`)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from cotdistill.data.encode import IGNORE_INDEX, EncodedExample
from cotdistill.data.packing import collate_packed, pack_examples


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


@dataclass
class Batch:
    """A collated micro-batch on its device, with what the loss's divisor needs."""

    tensors: dict[str, torch.Tensor | None]
    indices: list[int]
    num_supervised: int
    num_sequences: int  # records with at least one supervised token

    @staticmethod
    def of(tensors: dict[str, torch.Tensor | None], examples: list[EncodedExample]) -> Batch:
        return Batch(tensors, [e.index for e in examples], sum(e.num_supervised for e in examples),
                     sum(e.num_supervised > 0 for e in examples))

    def divisor(self, normalize: str) -> int:
        """What this batch adds to the step's divisor under ``loss.normalize``: supervised tokens or sequences."""
        return self.num_sequences if normalize == "sequences" else self.num_supervised


@dataclass(frozen=True)
class Collator:
    """Examples -> a :class:`Batch` on ``device``: one example per row, or several per row (packing)."""

    pad_id: int
    pad_to_multiple_of: int | None
    device: torch.device

    def batch(self, examples: list[EncodedExample]) -> Batch:
        tensors = collate(examples, self.pad_id, pad_to_multiple_of=self.pad_to_multiple_of)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        tensors["position_ids"] = None
        tensors["real_tokens"] = tensors["attention_mask"]
        return Batch.of(tensors, examples)

    def packed_batch(self, rows: list[list[EncodedExample]]) -> Batch:
        tensors = collate_packed(rows, self.pad_id, pad_to_multiple_of=self.pad_to_multiple_of)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        tensors["attention_mask"] = None  # the position-id resets define the blocks
        return Batch.of(tensors, [e for row in rows for e in row])


class BatchPlan:
    """Which micro-batches each optimizer step reads. The length-grouped micro-batches of an epoch form one global
    list; step ``s`` consumes micro-batches ``[s·G, (s+1)·G)`` with ``G = grad_accum × world_size``, rank ``r``
    taking every ``world_size``-th one. The position in the data is therefore the step number, which is what a
    checkpoint stores. Deterministic in (seed, epoch)."""

    def __init__(self, examples: list[EncodedExample], collator: Collator, *, batch_size: int, grad_accum: int,
                 seed: int, packing: bool, pack_length: int, world_size: int = 1, rank: int = 0) -> None:
        self.examples, self.collator = examples, collator
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self.packing, self.pack_length = packing, pack_length
        self.world_size, self.rank = world_size, rank
        self._epochs = {0: self.epoch_batches(0)}
        self.batches_per_epoch = len(self._epochs[0])
        self.steps_per_epoch = max(1, self.batches_per_epoch // (grad_accum * world_size))

    def epoch_batches(self, epoch: int) -> list[list[list[int]]]:
        """The micro-batches of one epoch; each is a list of rows, each row a list of example indices (one
        example per row unless packing)."""
        lengths = [len(e) for e in self.examples]
        if not self.packing:
            batches = length_grouped_batches(lengths, self.batch_size, seed=self.seed, epoch=epoch)
            return [[[i] for i in batch] for batch in batches]
        order = [i for batch in length_grouped_batches(lengths, 1, seed=self.seed, epoch=epoch) for i in batch]
        rows = pack_examples(lengths, order, self.pack_length)
        return [rows[k:k + self.batch_size] for k in range(0, len(rows), self.batch_size)]

    def micro_rows(self, global_index: int) -> list[list[EncodedExample]]:
        """The rows of micro-batch ``global_index``: each a list of examples (one unless packing)."""
        epoch, pos = divmod(global_index, self.batches_per_epoch)
        if epoch not in self._epochs:
            self._epochs = {epoch: self.epoch_batches(epoch)}  # keep one epoch's order in memory
        return [[self.examples[i] for i in row] for row in self._epochs[epoch][pos]]

    def micro_batch(self, global_index: int) -> Batch:
        rows = self.micro_rows(global_index)
        if self.packing:
            return self.collator.packed_batch(rows)
        return self.collator.batch([row[0] for row in rows])

    def step_indices(self, step: int) -> list[int]:
        """The global indices of this rank's micro-batches at optimizer step ``step``."""
        first = step * self.grad_accum * self.world_size
        return [first + k * self.world_size + self.rank for k in range(self.grad_accum)]

    def step_batches(self, step: int) -> list[Batch]:
        return [self.micro_batch(g) for g in self.step_indices(step)]
