"""Loss paths the trainer never calls, kept as references for tests and benches.

The trainer's objective is :func:`cotdistill.losses.fused_objective_sums`. What is here follows the same contract
(``losses``' module docstring) and is checked against the same plain formulas:

* :func:`chunked_distill_sums`: the objective through autograd, chunk by chunk under activation checkpointing; the
  fused path's values and gradients are tested against it, and ``bench/kd_loss_memory.py`` measures both;
* :func:`sparse_logprobs`: a teacher's top-k log-probs plus one tail bucket, the sparse form that equals the dense
  divergence at k = V (the trainer reads a cached teacher as a dense reconstruction instead,
  :func:`cotdistill.losses.reconstruct_teacher_logp`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from cotdistill.losses import LossConfig, TeacherRows, _teacher_chunk, distill_sums, softcap


def sparse_logprobs(student_logits: torch.Tensor, topk_ids: torch.Tensor, teacher_topk_logp: torch.Tensor,
                    temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher log-probs over ``k + 1`` buckets: the teacher's top-k tokens and one tail bucket.

    ``student_logits [N, V]``, ``topk_ids [N, k]`` (long), ``teacher_topk_logp [N, k]`` → two ``[N, k + 1]``.
    With k = V the tail is empty and every divergence equals the dense one. The tail log-prob is floored at
    log(1e-30) so an empty tail stays finite (its contribution is then ~1e-30).
    """
    s_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    s_top = s_logp.gather(-1, topk_ids)
    t_top = teacher_topk_logp.float()
    floor = 1e-30

    def tail(top: torch.Tensor) -> torch.Tensor:
        return torch.log((1.0 - top.exp().sum(-1, keepdim=True)).clamp_min(floor))

    return torch.cat([s_top, tail(s_top)], -1), torch.cat([t_top, tail(t_top)], -1)


def _chunk_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                teacher_logits: torch.Tensor | None, config: LossConfig, vocab: int,
                cap: float | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """CE and KD sums of one chunk, stacked ``[2]``; the student's logits are computed here from hidden states."""
    logits = softcap((hidden @ weight.T)[:, :vocab], cap)
    return torch.stack(distill_sums(logits, teacher_logits, targets, config, weights))


def chunked_distill_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, config: LossConfig, *,
                         vocab: int, teacher: TeacherRows | None = None, cap: float | None = None,
                         weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE sum, KD sum) from final hidden states, walking the positions in chunks (``weights [N]``: as in
    :func:`cotdistill.losses.distill_sums`).

    ``hidden [N, H]`` and the LM head ``weight [V_s, H]`` of the student; ``teacher``: an online teacher's
    ``OnlineRows`` or a cached one's ``CachedRows`` (read as the dense reconstruction
    :func:`cotdistill.losses.reconstruct_teacher_logp`), or none.
    Logits are cut to the first ``vocab`` rows (the shared tokenizer), dropping any padding rows.

    Each chunk runs under activation checkpointing, so at most one chunk's ``[chunk, V]`` logits and
    probabilities are alive at a time, in the forward and in the backward pass. Equal (to float rounding) to
    ``distill_sums(hidden @ weight.T, teacher.hidden @ teacher.weight.T, targets, config)``.
    """
    n = hidden.shape[0]
    step = config.chunk_size or max(n, 1)
    total = torch.zeros(2, device=hidden.device, dtype=torch.float32)
    if n == 0:  # keep the graph connected for DDP: a zero that depends on the weights
        zero = weight.sum() * 0.0 + hidden.sum() * 0.0
        return zero, zero.detach().clone()
    for start in range(0, n, step):
        sl = slice(start, start + step)
        with torch.no_grad():
            teacher_logits = _teacher_chunk(teacher, sl, vocab, config.temperature)
        args = (hidden[sl], weight, targets[sl], teacher_logits, config, vocab, cap,
                None if weights is None else weights[sl])
        if config.chunk_size and torch.is_grad_enabled():
            total = total + checkpoint(_chunk_sums, *args, use_reentrant=False)
        else:
            total = total + _chunk_sums(*args)
    return total[0], total[1]
