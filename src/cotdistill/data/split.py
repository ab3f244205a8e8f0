"""Which records of a training file a run trains and validates on, as indices into the file.

With a split seed — the truncation paper's protocol (its code filters the data set, calls
``train_test_split(test_size=1000, seed=42)``, then keeps the first 8,000 of the training part):

1. all records of the file;
2. drop those whose whole templated sequence has more than ``max_tokens`` tokens;
3. a seeded permutation of what is left: its first ``val_size`` (or ``floor(val_fraction · n)``) records validate;
4. the first ``max_records`` of the rest of the permutation train.

Without one (cotdistill's behaviour before these options): the first ``max_records`` of the file, then the length
filter, then the *last* ``val_size`` (or ``floor(val_fraction · n)``) of what is left validate — the file's tail.

Every index is the record's position in the file (what ``EncodedExample.index`` holds), so a teacher cache built on
the file holds the rows of both parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cotdistill.config import ConfigError
from cotdistill.data.encode import render_conversation
from cotdistill.data.records import ReasoningRecord


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`split_records`; every list holds file indices in ascending order."""

    train: list[int]
    val: list[int]  # the validation records split off the file (none when validation is another file)
    too_long: list[int]  # dropped by max_tokens, before the split
    read: int  # records the split was made from
    available: int  # training records left by the split, before max_records
    max_tokens: int | None = None
    split_seed: int | None = None
    max_records: int | None = None

    def describe(self, val_source: str | None = None) -> str:
        """The selection in words, for the start-of-run data line; ``val_source``: the validation file, if any."""
        parts = []
        if self.max_tokens is not None:
            parts.append(f"{self.read} records read, {len(self.too_long)} longer than data.max_tokens "
                         f"{self.max_tokens} (dropped)")
        if val_source is not None:
            parts.append(f"validation: {val_source}")
        elif not self.val:
            parts.append("validation: none")
        elif self.split_seed is not None:
            parts.append(f"validation: {len(self.val)} drawn at random (split_seed {self.split_seed})")
        else:
            parts.append(f"validation: the last {len(self.val)} records")
        if self.split_seed is not None and self.max_records is not None:
            parts.append(f"training: {len(self.train)} drawn at random of the {self.available} left (max_records)")
        return "; ".join(parts)

    def notes(self) -> dict:
        """The selection's figures for the run summary."""
        how = "random" if self.split_seed is not None else "tail"
        return {"records_read": self.read, "max_tokens": self.max_tokens,
                "longer_than_max_tokens": len(self.too_long), "validation_split": how,
                "split_seed": self.split_seed, "training_records_available": self.available}


def within_limit(lengths: list[int], max_tokens: int) -> tuple[list[int], list[int]]:
    """(kept, too long): the positions of ``lengths`` with at most ``max_tokens`` tokens and those with more."""
    return ([i for i, n in enumerate(lengths) if n <= max_tokens],
            [i for i, n in enumerate(lengths) if n > max_tokens])


def templated_lengths(tokenizer, records: list[ReasoningRecord], chunk: int = 256) -> list[int]:
    """Tokens of each record's whole conversation as the chat template renders it, before any truncation: the
    ``full_length`` that ``encode_record`` gives it (tested). Tokenized ``chunk`` records at a time, so that 17k
    long traces never hold their token ids at once."""
    lengths = []
    for start in range(0, len(records), chunk):
        texts = [render_conversation(tokenizer, r) for r in records[start:start + chunk]]
        lengths += [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return lengths


def split_records(n: int, *, lengths: list[int] | None = None, max_tokens: int | None = None,
                  val_size: int | None = None, val_fraction: float = 0.0, split_seed: int | None = None,
                  max_records: int | None = None) -> Selection:
    """Split records ``0 … n-1`` of a file in the order the module docstring gives. ``lengths``: each record's
    templated tokens (needed with ``max_tokens``). ``val_size`` wins over ``val_fraction`` (``DataConfig`` refuses
    both). The permutation is numpy's PCG64 ``default_rng(split_seed).permutation``: the same on every machine,
    and the one ``datasets``' ``train_test_split(seed=split_seed)`` draws, so ``val_size`` picks the records it
    picks (tested)."""
    if max_tokens is not None and (lengths is None or len(lengths) != n):
        raise ValueError(f"max_tokens needs the length of each of the {n} records")
    first = n if split_seed is not None or max_records is None else min(n, max_records)
    kept, too_long = (list(range(first)), []) if max_tokens is None else within_limit(lengths[:first], max_tokens)
    # floor(fraction * k) < k: only a count can leave nothing to train on
    n_val = val_size if val_size is not None else int(len(kept) * val_fraction)
    if kept and n_val >= len(kept):
        within = f" within data.max_tokens {max_tokens}" if max_tokens is not None else ""
        raise ConfigError(f"data.val_size {val_size} leaves no training record: the file has {len(kept)} "
                          f"records{within}")
    if split_seed is None:
        val, rest = kept[len(kept) - n_val:], kept[:len(kept) - n_val]
        train = rest  # max_records was applied first, as the limit of what was read
    else:
        order = [kept[k] for k in np.random.default_rng(split_seed).permutation(len(kept))]
        val, rest = order[:n_val], order[n_val:]
        train = rest[:max_records]
    return Selection(sorted(train), sorted(val), too_long, n, len(rest), max_tokens, split_seed, max_records)
