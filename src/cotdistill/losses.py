"""Distillation losses as plain functions.

Contract (every function here):

* inputs are rows of logits ``[N, V]`` at *supervised positions only* (the caller has already shifted labels and
  dropped ignored positions), or log-probabilities of the same shape;
* computation is in float32 whatever the input dtype; log-probs come from ``log_softmax``, never ``log(softmax)``;
* the ``*_sum`` functions return a masked **sum** over positions, each position times its ``weights`` entry where
  given (``[N]``; :func:`sequence_weights` under ``normalize: sequences``); the training loop divides once by the
  number of supervised tokens (or of sequences) in the whole accumulated (and all-reduced) batch. With ``N = 0``
  they return a zero that still carries a graph, so a rank with nothing to learn joins the backward pass.

Divergences, with ``p_T`` the teacher and ``p_S`` the student distribution at temperature ``τ``:

* ``forward_kl``: KL(p_T‖p_S);  ``reverse_kl``: KL(p_S‖p_T);
* ``jsd`` (generalised JSD(β), as in TRL's GKD): β=0 is forward KL, β=1 reverse KL, otherwise
  ``β·KL(p_T‖m) + (1−β)·KL(p_S‖m)`` with ``m = β·p_T + (1−β)·p_S``;
* ``skew_kl`` (α): KL(p_T‖α·p_T + (1−α)·p_S);  ``skew_reverse_kl`` (α): KL(p_S‖α·p_S + (1−α)·p_T);
* ``tvd``: ½·Σ|p_T − p_S|.

Paths the trainer never calls (the autograd-chunked objective, the top-k + tail form) are references in
:mod:`cotdistill.losses_reference`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cotdistill.config import NON_NEGATIVE, POSITIVE, PROBABILITY, SHARE, check_field_rules

KdKind = Literal["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tvd"]
Normalize = Literal["tokens", "sequences"]
CrossTokenizer = Literal["off", "uld", "spans"]
KD_KINDS = typing.get_args(KdKind)
NORMALIZE_MODES = typing.get_args(Normalize)


@dataclass
class LossConfig:
    """``loss = (1 − distill_ratio)·CE + distill_ratio·KD`` (×τ² on KD if ``scale_by_temperature``)."""

    distill_ratio: float = field(default=0.5, metadata={
        "help": "r; 0 = plain SFT (no teacher needed), 1 = pure KD", "range": PROBABILITY})
    kind: KdKind = field(default="forward_kl", metadata={"help": "the divergence KD measures"})
    beta: float = field(default=0.5, metadata={"help": "jsd", "range": PROBABILITY})
    alpha: float = field(default=0.1, metadata={"help": "skew_kl / skew_reverse_kl", "range": SHARE})
    temperature: float = field(default=1.0, metadata={"range": POSITIVE})
    scale_by_temperature: bool = field(default=True, metadata={
        "help": "multiply KD by τ² (Hinton et al., and the truncation paper's code) so the gradient size is "
                "τ-independent"})
    chunk_size: int = field(default=1024, metadata={
        "help": "supervised positions per chunk; 0 = materialise all logits at once", "range": NON_NEGATIVE})
    normalize: Normalize = field(default="tokens", metadata={
        "help": "what an optimizer step's loss is a mean over. \"tokens\": every supervised token of the step (all "
                "micro-batches and processes) counts once. \"sequences\": each sequence's own token mean, averaged "
                "over the step's sequences with ≥ 1 supervised token (a packed row's records are sequences) — what "
                "the truncation paper's code trains (batch 1 per GPU, token mean per sequence). Validation figures "
                "follow the same mean, as the paper's (batch 1) do, so a validation loss stays the objective that "
                "training lowers."})

    on_policy: float = field(default=0.0, metadata={
        "help": "GKD's lambda: the share of optimizer steps whose batch is the student's own samples (rollout:), "
                "scored by the online teacher; 0 = training on the records' text only, 1 = every step on-policy",
        "range": PROBABILITY})
    cross_tokenizer: CrossTokenizer = field(default="off", metadata={
        "help": "KD from a teacher whose tokenizer is not the student's (cotdistill.losses_cross): each renders the "
                "record its own way, and they are compared at the spans where their text agrees. \"uld\": the "
                "sorted-distribution distance (ULD); \"spans\": span-merged probabilities, an exact divergence over "
                "the tokens both vocabularies spell the same, ULD over the rest; \"off\": one vocabulary"})

    def __post_init__(self) -> None:
        check_field_rules(self)
        if self.cross_tokenizer == "spans" and self.kind not in ("forward_kl", "reverse_kl"):
            raise ValueError(f"loss.cross_tokenizer spans is written for kind forward_kl or reverse_kl, got "
                             f"{self.kind!r}")

    @property
    def kd_scale(self) -> float:
        return self.temperature**2 if self.scale_by_temperature else 1.0


def sequence_weights(targets_mask: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``1 / n_s`` at each supervised position of a sequence ``s`` with ``n_s`` supervised positions: ``[N]``, in
    the order of ``targets_mask``'s true entries, so that a weighted sum is a sum of per-sequence token means.

    ``targets_mask [B, T − 1]`` (label shift applied: position ``t`` is the label of token ``t + 1``);
    ``position_ids [B, T]`` or ``None``. Without position ids each row is one sequence; with them, a packed row's
    records are told apart where the position id restarts at 0 (``data/packing.py``). Naive equivalent: for each
    row and record, ``w[mask of that record] = 1 / (mask of that record).sum()``.
    """
    if position_ids is None:
        record = torch.zeros_like(targets_mask, dtype=torch.long)
    else:  # the label of token t + 1 belongs to that token's record
        record = (position_ids == 0).long().cumsum(1)[:, 1:]
    rows = torch.arange(record.shape[0], device=record.device)[:, None]
    key = (rows * (record.shape[1] + 2) + record)[targets_mask]  # one id per (row, record); record ≤ T
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].float()


def _weighted_sum(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``Σ_i w_i·Σ_j values[i, j]`` over rows ``i`` (``values [N]`` or ``[N, K]``); the plain sum without weights."""
    if weights is None:
        return values.sum()
    return (values.reshape(weights.shape[0], -1).sum(-1) * weights).sum()


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


def cross_entropy_sum(student_logits: torch.Tensor, targets: torch.Tensor,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ w·(−log p_S(target)). ``student_logits [N, V]``, ``targets [N]``, ``weights [N]`` (none: 1); no
    temperature (CE fits the data)."""
    if weights is None:
        return F.cross_entropy(student_logits.float(), targets, reduction="sum")
    return _weighted_sum(F.cross_entropy(student_logits.float(), targets, reduction="none"), weights)


def distill_sums(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor,
                 config: LossConfig, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE sum, KD sum) over ``N`` supervised rows, unchunked, each row times ``weights [N]`` where given. KD is 0
    without a teacher."""
    ce = cross_entropy_sum(student_logits, targets, weights)
    if teacher_logits is None:
        return ce, torch.zeros((), device=ce.device)
    kd = per_token_divergence(student_logits, teacher_logits, config.kind, beta=config.beta, alpha=config.alpha,
                              temperature=config.temperature)
    return ce, _weighted_sum(kd, weights)


def reconstruct_teacher_logp(topk_ids: torch.Tensor, topk_logp: torch.Tensor, tail_logp: torch.Tensor,
                             vocab: int) -> torch.Tensor:
    """A cached teacher as a dense ``[N, V]`` log-prob table: the kept entries where they are, every other token
    at the row's ``tail_logp`` (the remaining mass spread evenly). Repeated ids (rows padded to one width) write the
    same value again."""
    dense = tail_logp.float()[:, None].expand(topk_ids.shape[0], vocab).clone()
    return dense.scatter_(1, topk_ids, topk_logp.float())


def softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Gemma 2/3's final logit soft-capping, ``cap·tanh(logits / cap)``, as their forward applies it; ``None``: none."""
    return logits if cap is None else cap * torch.tanh(logits / cap)


@dataclass
class OnlineRows:
    """An online teacher at the supervised positions: its final hidden states ``[N, H_t]``, its output matrix
    ``[V_t, H_t]`` and its logit soft-cap."""

    hidden: torch.Tensor
    weight: torch.Tensor
    cap: float | None = None

    def logits(self, sl: slice, vocab: int, temperature: float) -> torch.Tensor:
        return softcap(self.hidden[sl] @ self.weight[:vocab].T, self.cap).float()


@dataclass
class CachedRows:
    """A cached teacher at the supervised positions: its top-k token ids and log-probs ``[N, K]`` and the log-prob
    of every other token ``[N]`` (``cotdistill teacher cache``)."""

    ids: torch.Tensor
    logp: torch.Tensor
    tail: torch.Tensor

    def logits(self, sl: slice, vocab: int, temperature: float) -> torch.Tensor:
        # the reconstruction times τ, so that log_softmax(logits / τ) gives back the cached log-probs
        return reconstruct_teacher_logp(self.ids[sl], self.logp[sl], self.tail[sl], vocab).mul_(temperature)


# what a teacher gives the loss, one row per supervised position (None: no teacher, KD is 0); the loss reads the
# first ``vocab`` (tokenizer) rows of either
TeacherRows = OnlineRows | CachedRows


def _teacher_chunk(teacher: TeacherRows | None, sl: slice, vocab: int, temperature: float) -> torch.Tensor | None:
    """The teacher's float32 logits for one chunk of positions, or ``None`` without a teacher."""
    return None if teacher is None else teacher.logits(sl, vocab, temperature)


def _has_closed_form(config: LossConfig, cap: float | None) -> bool:
    """CE with forward KL (the default, and JSD at β = 0) against any teacher (online or cached) or none, without
    soft-capping: the gradient is written out, at a third of autograd's ``[chunk, V]`` buffers."""
    forward_kl = config.kind == "forward_kl" or (config.kind == "jsd" and config.beta == 0.0)
    return cap is None and forward_kl


def _closed_form_chunk(z: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None, tau: float,
                       w_ce: float, w_kd: float,
                       weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE sum, forward-KL sum, d(w_ce·CE + w_kd·KD)/dz) of one chunk, each row times its ``weights`` entry where
    given; ``z`` and ``teacher_logits`` are float32 buffers this function owns and overwrites (no copies of them
    are made).

    ``dCE/dz = softmax(z) − onehot(y)``; with ``p_S = softmax(z/τ)``, ``dKL(p_T‖p_S)/dz = (p_S − p_T)/τ``; and
    ``KL = Σ p_T·log p_T − Σ p_T·z/τ + Σ_rows logsumexp(z/τ)`` (each row of ``p_T`` sums to 1), so no student
    log-prob table is stored: the largest tensors alive are ``z``, the teacher's table and ``p_T``."""
    rows = torch.arange(z.shape[0], device=z.device)
    lse = torch.logsumexp(z, -1)
    ce = _weighted_sum(lse, weights) - _weighted_sum(z[rows, targets], weights)
    kd = torch.zeros((), device=z.device)
    p_t = p_s = None
    if teacher_logits is not None:
        t_logp = teacher_logits.div_(tau)
        t_logp.sub_(torch.logsumexp(t_logp, -1, keepdim=True))
        p_t = t_logp.exp()
        z_tau = z if tau == 1.0 else z / tau
        lse_tau = lse if tau == 1.0 else torch.logsumexp(z_tau, -1)
        # sums over [chunk, V] products, written into the teacher's buffer: a flat dot product accumulates millions
        # of tiny terms into one float32 and drifted by 0.2% at V = 151,936; torch's sum adds in a cascade
        p_t_log_p_t = _weighted_sum(t_logp.mul_(p_t), weights)
        p_t_z = _weighted_sum(torch.mul(p_t, z_tau, out=t_logp), weights)
        kd = p_t_log_p_t - p_t_z + _weighted_sum(lse_tau, weights)
        del t_logp
        if tau != 1.0:
            p_s = z_tau.sub_(lse_tau[:, None]).exp_()
    grad = z.sub_(lse[:, None]).exp_()  # softmax(z), in z's buffer
    if p_t is None:
        grad.mul_(w_ce)
    elif p_s is None:  # τ = 1: p_S is this same softmax
        grad.mul_(w_ce + w_kd).add_(p_t, alpha=-w_kd)
    else:
        grad.mul_(w_ce).add_(p_s, alpha=w_kd / tau).add_(p_t, alpha=-w_kd / tau)
    grad[rows, targets] -= w_ce
    if weights is not None:  # each row's loss is weighted, so is its gradient
        grad.mul_(weights[:, None])
    return ce, kd, grad


def _accumulate(grad_hidden: torch.Tensor | None, grad_weight: torch.Tensor | None, d_logits: torch.Tensor,
                h: torch.Tensor, head: torch.Tensor, sl: slice, vocab: int) -> None:
    """Chain rule through ``logits = h @ head.T`` for one chunk: into the hidden states' rows and the head."""
    if grad_hidden is not None:
        grad_hidden[sl] = (d_logits.to(head.dtype) @ head).to(grad_hidden.dtype)
    if grad_weight is not None:
        grad_weight[:vocab].addmm_(d_logits.T, h.float())


class _FusedHeadObjective(torch.autograd.Function):
    """``combine(CE, KD)`` from hidden states and the LM head, with each chunk's gradient computed inside the
    forward (as fused linear-loss kernels do): a chunk's ``[chunk, V]`` logits are freed before the next chunk's
    exist, and nothing is recomputed in the backward, which only scales the stored gradients."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, teacher, config, vocab, cap, need_grad, weights):
        w_ce, w_kd = 1.0 - config.distill_ratio, config.distill_ratio * config.kd_scale
        head = weight[:vocab]
        # a frozen head (LoRA, PEFT) needs no [V, H] gradient: neither allocated nor computed
        grad_hidden = torch.zeros_like(hidden) if need_grad and ctx.needs_input_grad[0] else None
        # float32 whatever the weight's dtype: many small chunk products are summed into it
        grad_weight = (torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
                       if need_grad and ctx.needs_input_grad[1] else None)
        sums = torch.zeros(2, dtype=torch.float32, device=hidden.device)
        closed_form = _has_closed_form(config, cap)
        step = config.chunk_size or max(hidden.shape[0], 1)
        for start in range(0, hidden.shape[0], step):
            sl = slice(start, start + step)
            h = hidden[sl]
            w = None if weights is None else weights[sl]
            teacher_logits = _teacher_chunk(teacher, sl, vocab, config.temperature)
            if need_grad and closed_form:
                ce, kd, d_logits = _closed_form_chunk((h @ head.T).float(), targets[sl], teacher_logits,
                                                      config.temperature, w_ce, w_kd, w)
                teacher_logits = None
                sums += torch.stack([ce.float(), kd.float()])
                _accumulate(grad_hidden, grad_weight, d_logits, h, head, sl, vocab)
                del d_logits
                continue
            with torch.enable_grad():
                logits = (h @ head.T).detach().requires_grad_(need_grad)
                # soft-capped inside the graph, so the gradient flows through the cap
                ce, kd = distill_sums(softcap(logits, cap), teacher_logits, targets[sl], config, w)
                if need_grad:
                    (d_logits,) = torch.autograd.grad(w_ce * ce + w_kd * kd, logits)
            sums += torch.stack([ce.detach().float(), kd.detach().float()])
            del teacher_logits
            if need_grad:
                _accumulate(grad_hidden, grad_weight, d_logits.float(), h, head, sl, vocab)
                del d_logits, logits
        return _FusedHeadObjective.finish(ctx, sums, config, weight, grad_hidden if need_grad else None,
                                          grad_weight if need_grad else None, need_grad)

    @staticmethod
    def finish(ctx, sums: torch.Tensor, config: LossConfig, weight: torch.Tensor, grad_hidden: torch.Tensor | None,
               grad_weight: torch.Tensor | None, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The end of a fused forward: the gradients computed in it kept for the backward, the objective
        ``combine(CE, KD)`` returned with the detached CE and KD sums (shared by the cross-tokenizer objective)."""
        if need_grad:
            ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        objective = combine(sums[0], sums[1], config)
        ce_sum, kd_sum = sums[0].clone(), sums[1].clone()
        ctx.mark_non_differentiable(ce_sum, kd_sum)
        return objective, ce_sum, kd_sum

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_objective, _grad_ce, _grad_kd):
        grad_hidden, grad_weight = ctx.saved_tensors
        # in place: the stored gradients are not needed again, and a second [V, H] copy is what this avoids
        if grad_hidden is not None:
            grad_hidden.mul_(grad_objective.to(grad_hidden.dtype))
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_objective).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None, None, None, None


def fused_objective_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, config: LossConfig, *,
                         vocab: int, teacher: TeacherRows | None = None, cap: float | None = None,
                         weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objective sum, CE sum, KD sum): the objective ``combine(CE, KD)`` carries the gradient, CE and KD are
    detached figures for logging. Same inputs and values as the reference
    :func:`cotdistill.losses_reference.chunked_distill_sums`, at less memory: the backward needs no chunk's logits
    (they are not recomputed) — only ``[N, H]`` and ``[V, H]`` gradients, which any method must produce. Call
    ``backward`` on the objective (times any scale) only."""
    if hidden.shape[0] == 0:  # keep the graph connected for DDP: a zero that depends on the weights
        zero = weight.sum() * 0.0 + hidden.sum() * 0.0
        return zero, zero.detach().clone(), zero.detach().clone()
    # parameters require grad under no_grad too: validation must not compute (and hold) [V, H] gradients
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _FusedHeadObjective.apply(hidden, weight, targets, teacher, config, vocab, cap, need_grad, weights)


def combine(ce_sum: torch.Tensor, kd_sum: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """The training objective's sum: ``(1 − r)·CE + r·scale·KD``."""
    r = config.distill_ratio
    return (1.0 - r) * ce_sum + r * config.kd_scale * kd_sum
