"""Distillation losses as plain functions.

Contract (every function here):

* inputs are rows of logits ``[N, V]`` at *supervised positions only* (the caller has already shifted labels and
  dropped ignored positions), or log-probabilities of the same shape;
* computation is in float32 whatever the input dtype; log-probs come from ``log_softmax``, never ``log(softmax)``;
* the ``*_sum`` functions return a masked **sum** over positions; the training loop divides once by the number of
  supervised tokens in the whole accumulated (and all-reduced) batch. With ``N = 0`` they return a zero that
  still carries a graph, so a rank with nothing to learn joins the backward pass.

Divergences, with ``p_T`` the teacher and ``p_S`` the student distribution at temperature ``τ``:

* ``forward_kl``: KL(p_T‖p_S);  ``reverse_kl``: KL(p_S‖p_T);
* ``jsd`` (generalised JSD(β), as in TRL's GKD): β=0 is forward KL, β=1 reverse KL, otherwise
  ``β·KL(p_T‖m) + (1−β)·KL(p_S‖m)`` with ``m = β·p_T + (1−β)·p_S``;
* ``skew_kl`` (α): KL(p_T‖α·p_T + (1−α)·p_S);  ``skew_reverse_kl`` (α): KL(p_S‖α·p_S + (1−α)·p_T);
* ``tvd``: ½·Σ|p_T − p_S|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

KD_KINDS = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tvd")


@dataclass
class LossConfig:
    """``loss = (1 − distill_ratio)·CE + distill_ratio·KD`` (×τ² on KD if ``scale_by_temperature``)."""

    distill_ratio: float = 0.5  # r; 0 = plain SFT (no teacher needed), 1 = pure KD
    kind: str = "forward_kl"
    beta: float = 0.5  # jsd
    alpha: float = 0.1  # skew_kl / skew_reverse_kl
    temperature: float = 1.0
    # multiply KD by τ² (Hinton et al., and the truncation paper's code) so the gradient size is τ-independent
    scale_by_temperature: bool = True
    chunk_size: int = 1024  # supervised positions per chunk; 0 = materialise all logits at once

    def __post_init__(self) -> None:
        if not 0.0 <= self.distill_ratio <= 1.0:
            raise ValueError(f"distill_ratio must be in [0, 1], got {self.distill_ratio}")
        if self.kind not in KD_KINDS:
            raise ValueError(f"kind must be one of {KD_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0, got {self.chunk_size}")

    @property
    def kd_scale(self) -> float:
        return self.temperature**2 if self.scale_by_temperature else 1.0


def _kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) per row from finite log-probs (log_softmax of finite logits, or the floored sparse tail)."""
    p = p_logp.exp()
    return (p * (p_logp - q_logp)).sum(-1)


def _mix_logp(a_logp: torch.Tensor, b_logp: torch.Tensor, weight_a: float) -> torch.Tensor:
    """log(w·a + (1−w)·b), computed stably in log space."""
    return torch.logaddexp(a_logp + math.log(weight_a), b_logp + math.log1p(-weight_a))


def divergence_from_logprobs(student_logp: torch.Tensor, teacher_logp: torch.Tensor, kind: str, *,
                             beta: float = 0.5, alpha: float = 0.1) -> torch.Tensor:
    """Per-row divergence ``[N]`` between two ``[N, K]`` log-probability tables (dense or top-k + tail)."""
    if kind == "forward_kl":
        return _kl(teacher_logp, student_logp)
    if kind == "reverse_kl":
        return _kl(student_logp, teacher_logp)
    if kind == "jsd":
        if beta == 0.0:
            return _kl(teacher_logp, student_logp)
        if beta == 1.0:
            return _kl(student_logp, teacher_logp)
        mixture = _mix_logp(teacher_logp, student_logp, beta)
        return beta * _kl(teacher_logp, mixture) + (1 - beta) * _kl(student_logp, mixture)
    if kind == "skew_kl":
        return _kl(teacher_logp, _mix_logp(teacher_logp, student_logp, alpha) if alpha > 0 else student_logp)
    if kind == "skew_reverse_kl":
        return _kl(student_logp, _mix_logp(student_logp, teacher_logp, alpha) if alpha > 0 else teacher_logp)
    if kind == "tvd":
        return 0.5 * (teacher_logp.exp() - student_logp.exp()).abs().sum(-1)
    raise ValueError(f"kind must be one of {KD_KINDS}, got {kind!r}")


def per_token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: str = "forward_kl", *,
                         beta: float = 0.5, alpha: float = 0.1, temperature: float = 1.0) -> torch.Tensor:
    """Divergence per position. ``student_logits``, ``teacher_logits``: ``[N, V]`` → ``[N]`` (float32).

    Naive equivalent for forward KL: ``(p_T * (log p_T − log p_S)).sum(-1)`` with
    ``log p = log_softmax(logits / τ)``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: student {tuple(student_logits.shape)} vs "
                         f"teacher {tuple(teacher_logits.shape)}")
    s_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t_logp = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return divergence_from_logprobs(s_logp, t_logp, kind, beta=beta, alpha=alpha)


def cross_entropy_sum(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ −log p_S(target). ``student_logits [N, V]``, ``targets [N]``; no temperature (CE fits the data)."""
    return F.cross_entropy(student_logits.float(), targets, reduction="sum")


def distill_sums(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
                 config: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE sum, KD sum) over ``N`` supervised rows, unchunked. KD is 0 without a teacher."""
    ce = cross_entropy_sum(student_logits, targets)
    if teacher_logits is None:
        return ce, torch.zeros((), device=ce.device)
    kd = per_token_divergence(student_logits, teacher_logits, config.kind, beta=config.beta, alpha=config.alpha,
                              temperature=config.temperature).sum()
    return ce, kd


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


def softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Gemma 2/3's final logit soft-capping, ``cap·tanh(logits / cap)``, as their forward applies it; ``None``: none."""
    return logits if cap is None else cap * torch.tanh(logits / cap)


def _chunk_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                teacher_hidden: torch.Tensor | None, teacher_weight: torch.Tensor | None,
                topk_ids: torch.Tensor | None, topk_logp: torch.Tensor | None,
                config: LossConfig, vocab: int, cap: float | None = None,
                teacher_cap: float | None = None) -> torch.Tensor:
    """CE and KD sums of one chunk, stacked ``[2]``; logits are computed here from hidden states."""
    logits = softcap((hidden @ weight.T)[:, :vocab], cap)
    ce = cross_entropy_sum(logits, targets)
    if teacher_hidden is not None:
        with torch.no_grad():
            t_logits = softcap((teacher_hidden @ teacher_weight.T)[:, :vocab], teacher_cap)
        kd = per_token_divergence(logits, t_logits, config.kind, beta=config.beta, alpha=config.alpha,
                                  temperature=config.temperature).sum()
    elif topk_ids is not None:
        s_b, t_b = sparse_logprobs(logits, topk_ids, topk_logp, config.temperature)
        kd = divergence_from_logprobs(s_b, t_b, config.kind, beta=config.beta, alpha=config.alpha).sum()
    else:
        kd = torch.zeros((), device=ce.device)
    return torch.stack([ce, kd])


def chunked_distill_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, config: LossConfig, *,
                         vocab: int, teacher_hidden: torch.Tensor | None = None,
                         teacher_weight: torch.Tensor | None = None, topk_ids: torch.Tensor | None = None,
                         topk_logp: torch.Tensor | None = None, cap: float | None = None,
                         teacher_cap: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE sum, KD sum) from final hidden states, walking the positions in chunks.

    ``hidden [N, H]`` and the LM head ``weight [V_s, H]`` of the student; ``teacher_hidden [N, H_t]`` with
    ``teacher_weight [V_t, H_t]`` (online teacher) or ``topk_ids``/``topk_logp [N, k]`` (cached teacher).
    Logits are cut to the first ``vocab`` rows (the shared tokenizer), dropping any padding rows.

    Each chunk runs under activation checkpointing, so at most one chunk's ``[chunk, V]`` logits and
    probabilities are alive at a time, in the forward and in the backward pass. Equal (to float rounding) to
    ``distill_sums(hidden @ weight.T, teacher_hidden @ teacher_weight.T, targets, config)``.
    """
    n = hidden.shape[0]
    step = config.chunk_size or max(n, 1)
    total = torch.zeros(2, device=hidden.device, dtype=torch.float32)
    if n == 0:  # keep the graph connected for DDP: a zero that depends on the weights
        zero = weight.sum() * 0.0 + hidden.sum() * 0.0
        return zero, zero.detach().clone()
    for start in range(0, n, step):
        sl = slice(start, start + step)
        args = (hidden[sl], weight, targets[sl],
                None if teacher_hidden is None else teacher_hidden[sl], teacher_weight,
                None if topk_ids is None else topk_ids[sl], None if topk_logp is None else topk_logp[sl])
        if config.chunk_size and torch.is_grad_enabled():
            total = total + checkpoint(_chunk_sums, *args, config, vocab, cap, teacher_cap, use_reentrant=False)
        else:
            total = total + _chunk_sums(*args, config, vocab, cap, teacher_cap)
    return total[0], total[1]


def combine(ce_sum: torch.Tensor, kd_sum: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """The training objective's sum: ``(1 − r)·CE + r·scale·KD``."""
    r = config.distill_ratio
    return (1.0 - r) * ce_sum + r * config.kd_scale * kd_sum
