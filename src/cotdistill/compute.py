"""Compute accounting: analytic FLOPs of decoder LMs, peak memory above a baseline, wall time.

FLOPs are *model* FLOPs (a multiply-add counts 2): per token, 2× the weights of every matmul; attention adds
``4·B·heads·T²·head_dim`` per layer forward (QKᵀ and AV over the full square, as ``FlopCounterMode`` counts
SDPA). Training counts the student's forward + backward as 3× its forward and the teacher's forward once;
activation recomputation is not counted (it is an implementation choice, not work the model needs). On-policy
steps add the student's sampling (:func:`sampling_flops`): one forward per generated token with a KV cache.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    mlp_matrices: int = 3  # gated MLP (Llama, Qwen, Mistral): gate, up, down; GPT-2's: up, down

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """From a transformers config: Llama-style names, and GPT-2's (``n_inner``, a plain two-matrix MLP)."""
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        gated = getattr(config, "intermediate_size", None) is not None
        intermediate = (config.intermediate_size if gated
                        else getattr(config, "n_inner", None) or 4 * config.hidden_size)
        return cls(config.hidden_size, config.num_hidden_layers, heads,
                   getattr(config, "num_key_value_heads", None) or heads, head_dim, intermediate,
                   config.vocab_size, mlp_matrices=3 if gated else 2)

    @property
    def layer_matmul_params(self) -> int:
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden
        mlp = self.mlp_matrices * self.hidden * self.intermediate
        return attn + mlp


def forward_flops(shape: ModelShape, batch: int, seq_len: int, head_positions: int | None = None) -> int:
    """Forward FLOPs on a ``[batch, seq_len]`` batch; the LM head runs on ``head_positions`` rows (all by default)."""
    tokens = batch * seq_len
    body = 2 * shape.layers * shape.layer_matmul_params * tokens
    attention = 4 * shape.layers * batch * shape.heads * seq_len * seq_len * shape.head_dim
    head_rows = tokens if head_positions is None else head_positions
    return body + attention + 2 * shape.hidden * shape.vocab * head_rows


def training_flops(student: ModelShape, teacher: ModelShape | None, batch: int, seq_len: int,
                   head_positions: int | None = None) -> int:
    """Student forward + backward (3×) plus the online teacher's forward, for one micro-batch."""
    flops = 3 * forward_flops(student, batch, seq_len, head_positions)
    if teacher is not None:
        flops += forward_flops(teacher, batch, seq_len, head_positions)
    return flops


def sampling_flops(shape: ModelShape, batch: int, prompt_len: int, new_tokens: int) -> int:
    """Sampling ``new_tokens`` tokens for each row of a ``[batch, prompt_len]`` left-padded batch with a KV cache:
    the prompt's forward (the head on its last position only), then one token per row per step, each attending to
    the ``prompt_len + i`` positions before it. Rows of different lengths are counted one by one (``batch=1``). Equal to
    ``sum(forward_flops(shape, batch, 1) + 4·layers·batch·heads·(prompt_len + i)·head_dim for i in 1..new_tokens)``
    with the ``T²`` attention term of a one-token forward replaced by its context length."""
    prefill = forward_flops(shape, batch, prompt_len, head_positions=batch)
    per_token = 2 * shape.layers * shape.layer_matmul_params + 2 * shape.hidden * shape.vocab
    # sum over i = 1..n of the context length (prompt_len + i)
    context = new_tokens * prompt_len + new_tokens * (new_tokens + 1) // 2
    attention = 4 * shape.layers * batch * shape.heads * shape.head_dim * context
    return prefill + batch * new_tokens * per_token + attention


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class MemoryMonitor:
    """Peak memory above the baseline taken at ``start()``.

    CUDA: ``max_memory_allocated`` minus the allocated bytes at start. CPU: resident set size sampled every
    ``interval`` seconds by a thread (the allocator may keep freed pages, so run compared settings in separate
    processes — the benches do).
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> MemoryMonitor:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            self.baseline = self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def peak_above_baseline(self) -> int:
        if self.device.type == "cuda":
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.baseline)
        self.peak = max(self.peak, _rss_bytes())
        return max(0, self.peak - self.baseline)

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak_above_baseline()
