"""Sequence packing: several records in one row, attention kept inside each record.

Each record's position ids restart at 0 inside the row and no 2-D attention mask is passed; transformers then
builds a block-diagonal causal mask from the position-id resets (SDPA / eager), and flash-attention uses them
as ``cu_seqlens``. The first label of every record is ignored: in a packed row it would otherwise be "predicted"
from the previous record's last token. Trailing padding is its own block (positions restart) with no labels.
"""

from __future__ import annotations

import torch

from cotdistill.data.encode import IGNORE_INDEX, EncodedExample


def pack_examples(lengths: list[int], order: list[int], pack_length: int) -> list[list[int]]:
    """Greedy first-fit, in ``order``: each row holds records whose lengths sum to at most ``pack_length``
    (a record longer than that gets a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        slot = next((r for r, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([i])
            room.append(pack_length - n)
        else:
            rows[slot].append(i)
            room[slot] -= n
    return rows


def collate_packed(rows: list[list[EncodedExample]], pad_id: int, *,
                   pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    longest = max(sum(len(e) for e in row) for row in rows)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), longest), dtype=torch.long)
    real = torch.zeros((len(rows), longest), dtype=torch.long)  # 1 on record tokens (for token counts only)
    for r, row in enumerate(rows):
        pos = 0
        for ex in row:
            n = len(ex)
            input_ids[r, pos:pos + n] = torch.tensor(ex.input_ids)
            labels[r, pos + 1:pos + n] = torch.tensor(ex.labels[1:])  # label 0 of each record stays ignored
            position_ids[r, pos:pos + n] = torch.arange(n)
            real[r, pos:pos + n] = 1
            pos += n
        position_ids[r, pos:] = torch.arange(longest - pos)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "real_tokens": real}
