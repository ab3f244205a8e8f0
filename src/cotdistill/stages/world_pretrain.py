"""The base phase of the world's original student: next-token prediction on packed plain documents.

This is ordinary causal-LM pretraining (every token supervised, documents joined by the end-of-text token and cut
into fixed blocks, so no compute goes to padding); the chat phase that follows uses the project's trainer. The
weights are saved with ``save_pretrained`` (atomically) so the chat phase loads them like any model.
Only the world-build stage runs it, so it lives beside that stage, above the trainer it borrows from.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

from cotdistill.training.checkpoint import save_pretrained_atomic
from cotdistill.training.schedule import lr_factor


def pack_documents(tokenizer, documents: Iterable[str], block: int) -> torch.Tensor:
    """All documents as one stream (each followed by the end-of-text token) cut into ``block``-token rows."""
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    stream: list[int] = []
    for doc in documents:
        stream += tokenizer(doc, add_special_tokens=False).input_ids + [sep]
    rows = len(stream) // block
    return torch.tensor(stream[: rows * block]).view(rows, block)


def pretrain(model, tokenizer, blocks: torch.Tensor, out, *, steps: int, batch_size: int, lr: float,
             seed: int, warmup: int = 50, weight_decay: float = 0.01, progress: bool = True) -> dict:
    """``steps`` AdamW steps over shuffled ``blocks`` (epochs repeat with a new order); returns a summary."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    model.train()
    order, cursor, losses = torch.randperm(len(blocks), generator=generator), 0, []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="base phase", disable=not progress)
    for step in bar:
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[cursor: cursor + batch_size]]
        cursor += batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(step, warmup_steps=warmup, total_steps=steps, min_lr_ratio=0.1)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    save_pretrained_atomic(model, tokenizer, out)
    seconds = time.perf_counter() - start
    tokens = steps * batch_size * blocks.shape[1]
    return {"steps": steps, "tokens": tokens, "blocks": len(blocks), "block": blocks.shape[1],
            "final_loss": sum(losses[-50:]) / len(losses[-50:]), "wall_time_s": seconds,
            "tokens_per_s": tokens / seconds}
