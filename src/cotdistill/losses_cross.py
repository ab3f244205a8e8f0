"""Distillation across tokenizers: a teacher whose vocabulary is not the student's (``loss.cross_tokenizer``).

The two sides are compared only where they read the same text: at the first position of each aligned span
(:mod:`cotdistill.data.align`), where both predict "what text comes next" after the same prefix. Two methods:

* ``uld`` — Universal Logit Distillation (Boizard et al. 2024): the L1 distance between the two next-token
  distributions each sorted in decreasing order, the shorter padded with zeros (:func:`uld_distance`). Positions are
  paired by the text they read, not by their order in the sequence as in the paper (which pairs the k-th answer
  token of one tokenizer with the k-th of the other).
* ``spans`` — an exact divergence where an exact one exists, ULD on the rest (the "hybrid" of TRL's GOLD trainer,
  written from its description). At a span start each side's distribution is split into

  - the span's own text, ``E``: the product of that side's probabilities of its tokens in the span (tokens merged
    into one span probability; the student's later tokens in the span carry the gradient of this product),
  - every vocabulary entry whose string the other tokenizer also has, other than the span's first tokens,
  - the rest: the remaining entries, plus the first token's mass that continues otherwise than the span.

  KD = Σ over ``E`` and the shared entries of the *generalised* divergence ``p·log(p/q) − p + q`` (forward KL,
  ``p`` the teacher; reverse KL swaps them: each term ≥ 0 on sub-distributions, and over a whole vocabulary the
  ``−p + q`` terms cancel, so it is the ordinary KL), plus ULD over the two rests.

  With one tokenizer on both sides every span is one token, every entry is shared and the rests are empty, so
  ``spans`` is ordinary token-level KD (tested, with its gradient).

No ``[V_student, V_teacher]`` matrix exists: the shared entries are two index vectors, and the loss keeps the fused
head's chunking (one chunk's ``[chunk, V]`` logits at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cotdistill.losses import (
    CachedRows,
    OnlineRows,
    _FusedHeadObjective,
    _weighted_sum,
    cross_entropy_sum,
    softcap,
)

CROSS_KINDS = ("forward_kl", "reverse_kl")  # the divergences the span method is written for


@dataclass
class CrossRows:
    """An online teacher with another vocabulary, at the spans of a micro-batch (``S`` spans, ``N`` supervised
    student rows, ``C`` of them inside a span after its first, ``M`` shared vocabulary entries)."""

    at_starts: OnlineRows | CachedRows  # the teacher where it predicts each span's first token, one row per span
    vocab: int  # the teacher tokenizer's tokens (rows past it are padding)
    first: torch.Tensor  # [S] the teacher's first token of each span
    span_logp: torch.Tensor  # [S] log p_T(span text) at the loss temperature: the sum over the span's teacher tokens
    starts: torch.Tensor  # [S] the student row (of the N) that predicts each span's first student token
    continued: torch.Tensor  # [C] student rows predicting a span's later tokens
    continued_span: torch.Tensor  # [C] their span
    shared_student: torch.Tensor  # [M] student ids whose string is also a teacher token
    shared_teacher: torch.Tensor  # [M] those teacher tokens
    mode: str  # "uld" or "spans"

    def teacher_logp(self, spans: torch.Tensor, temperature: float) -> torch.Tensor:
        """``[len(spans), V_t]`` the teacher's next-token log-probs at these spans' starts, at the temperature."""
        return F.log_softmax(self.at_starts.logits(spans, self.vocab, temperature) / temperature, dim=-1)


def uld_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """ULD's distance per row: ``Σ_i |sort↓(p)_i − sort↓(q)_i|`` with the shorter row padded with zeros.
    ``p [N, V_p]``, ``q [N, V_q]`` (probabilities, or any non-negative masses) → ``[N]``.

    Only the ``min(V_p, V_q)`` largest entries of each side are sorted: past them the shorter side's padding is
    zero, so the longer side adds the mass of its remaining entries."""
    k = min(p.shape[-1], q.shape[-1])
    top_p = p.topk(k, dim=-1).values if p.shape[-1] > k else p.sort(dim=-1, descending=True).values
    top_q = q.topk(k, dim=-1).values if q.shape[-1] > k else q.sort(dim=-1, descending=True).values
    tails = (p.sum(-1) - top_p.sum(-1)) + (q.sum(-1) - top_q.sum(-1))
    return (top_p - top_q).abs().sum(-1) + tails


def _generalised_kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """``p·(log p − log q) − p + q`` elementwise: ≥ 0 for any masses, and the KL when summed over two whole
    distributions."""
    p, q = p_logp.exp(), q_logp.exp()
    return p * (p_logp - q_logp) - p + q


def _without_shared(probs: torch.Tensor, columns: torch.Tensor, shared: torch.Tensor, first: torch.Tensor,
                    first_rest: torch.Tensor) -> torch.Tensor:
    """One side's rest: ``probs [a, V]`` with the shared entries compared exactly (``shared [a, M]`` true) set to
    zero, and the span's first token's column holding only the mass that continues otherwise (``first_rest``)."""
    keep = torch.ones_like(probs)
    keep[:, columns] = (~shared).to(probs.dtype)
    return (probs * keep).scatter(1, first[:, None], first_rest[:, None])


def span_divergence(student_logp: torch.Tensor, student_first: torch.Tensor, student_rest_logp: torch.Tensor,
                    teacher_logp: torch.Tensor, teacher_first: torch.Tensor, teacher_span_logp: torch.Tensor,
                    shared_student: torch.Tensor, shared_teacher: torch.Tensor, kind: str) -> torch.Tensor:
    """The ``spans`` divergence at ``a`` span starts (module docstring) → ``[a]``.

    ``*_logp``: each side's next-token log-probs ``[a, V_side]`` at the loss temperature; ``*_first [a]``: each
    side's first token of the span; ``student_rest_logp [a]``: the student's log-probs of its later tokens in the
    span, summed (0 for a one-token span); ``teacher_span_logp [a]``: the teacher's whole-span log-prob."""
    student_span = student_logp.gather(1, student_first[:, None])[:, 0] + student_rest_logp
    # exact entries: shared strings, except the two first tokens (their mass is the span's, or the rest's)
    shared = ((shared_student[None] != student_first[:, None]) & (shared_teacher[None] != teacher_first[:, None]))
    s_shared, t_shared = student_logp[:, shared_student], teacher_logp[:, shared_teacher]
    if kind == "forward_kl":
        exact = (_generalised_kl(t_shared, s_shared) * shared).sum(-1) + _generalised_kl(teacher_span_logp,
                                                                                          student_span)
    else:
        exact = (_generalised_kl(s_shared, t_shared) * shared).sum(-1) + _generalised_kl(student_span,
                                                                                          teacher_span_logp)
    s_probs, t_probs = student_logp.exp(), teacher_logp.exp()
    s_first_rest = (s_probs.gather(1, student_first[:, None])[:, 0] - student_span.exp()).clamp_min(0.0)
    t_first_rest = (t_probs.gather(1, teacher_first[:, None])[:, 0] - teacher_span_logp.exp()).clamp_min(0.0)
    s_rest = _without_shared(s_probs, shared_student, shared, student_first, s_first_rest)
    t_rest = _without_shared(t_probs, shared_teacher, shared, teacher_first, t_first_rest)
    return exact + uld_distance(s_rest, t_rest)


def _row_divergence(z: torch.Tensor, first: torch.Tensor, rest_logp: torch.Tensor, teacher: CrossRows,
                    spans: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """The divergence at the span starts of one chunk: ``z [a, V_s]`` the student's (soft-capped) logits there."""
    student_logp = F.log_softmax(z / temperature, dim=-1)
    teacher_logp = teacher.teacher_logp(spans, temperature)
    if teacher.mode == "uld":
        return uld_distance(student_logp.exp(), teacher_logp.exp())
    return span_divergence(student_logp, first, rest_logp, teacher_logp, teacher.first[spans],
                           teacher.span_logp[spans], teacher.shared_student, teacher.shared_teacher, kind)


@torch.no_grad()
def _continuation_logp(hidden: torch.Tensor, head: torch.Tensor, targets: torch.Tensor, teacher: CrossRows,
                       cap: float | None, temperature: float, step: int) -> torch.Tensor:
    """``[S]``: per span, the student's log-probs of its tokens after the first, summed (the merged span)."""
    rest = torch.zeros(teacher.starts.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, teacher.continued.shape[0], step):
        rows = teacher.continued[start:start + step]
        z = softcap(hidden[rows] @ head.T, cap).float() / temperature
        logp = z.gather(1, targets[rows][:, None])[:, 0] - torch.logsumexp(z, -1)
        rest.index_add_(0, teacher.continued_span[start:start + step], logp)
    return rest


def _accumulate_rows(grad_hidden: torch.Tensor | None, grad_weight: torch.Tensor | None, d_logits: torch.Tensor,
                     h: torch.Tensor, head: torch.Tensor, rows: torch.Tensor, vocab: int) -> None:
    """Chain rule through ``logits = h @ head.T`` for the given rows, added to what earlier passes stored."""
    if grad_hidden is not None:
        grad_hidden.index_add_(0, rows, (d_logits.to(head.dtype) @ head).to(grad_hidden.dtype))
    if grad_weight is not None:
        grad_weight[:vocab].addmm_(d_logits.T, h.float())


class _CrossHeadObjective(_FusedHeadObjective):
    """``combine(CE, KD)`` with a cross-tokenizer teacher, its gradient computed chunk by chunk in the forward as
    ``losses._FusedHeadObjective`` does (its end and its backward are that class's). Three passes: (A) the
    student's merged span log-probs (no gradient); (B) every row's CE and each span start's KD, keeping
    d KD / d(merged log-prob) per span; (C) that derivative pushed into the rows after each span's first —
    ``d log p(target) / dz`` scaled, the shape of a CE gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, teacher: CrossRows, config, vocab, cap, need_grad, weights):
        w_ce, w_kd = 1.0 - config.distill_ratio, config.distill_ratio * config.kd_scale
        tau, head, n = config.temperature, weight[:vocab], hidden.shape[0]
        grad_hidden = torch.zeros_like(hidden) if need_grad and ctx.needs_input_grad[0] else None
        grad_weight = (torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
                       if need_grad and ctx.needs_input_grad[1] else None)
        step = config.chunk_size or max(n, 1)
        rest = _continuation_logp(hidden, head, targets, teacher, cap, tau, step)
        span_grad = torch.zeros_like(rest)
        span_of_row = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
        span_of_row[teacher.starts] = torch.arange(teacher.starts.shape[0], device=hidden.device)
        sums = torch.zeros(2, dtype=torch.float32, device=hidden.device)
        for start in range(0, n, step):
            rows = torch.arange(start, min(start + step, n), device=hidden.device)
            local = span_of_row[rows]
            at_start = local >= 0
            spans = local[at_start]
            w = None if weights is None else weights[rows]
            with torch.enable_grad():
                logits = (hidden[rows] @ head.T).detach().requires_grad_(need_grad)
                z = softcap(logits, cap).float()
                ce = cross_entropy_sum(z, targets[rows], w)
                span_rest = rest[spans].clone().requires_grad_(need_grad)
                kd_rows = _row_divergence(z[at_start], targets[rows][at_start], span_rest, teacher, spans,
                                          config.kind, tau)
                kd = _weighted_sum(kd_rows, None if w is None else w[at_start])
                if need_grad:
                    d_logits, d_rest = torch.autograd.grad(w_ce * ce + w_kd * kd, [logits, span_rest],
                                                           allow_unused=True)
                    if d_rest is not None:
                        span_grad[spans] = d_rest
            sums += torch.stack([ce.detach().float(), kd.detach().float()])
            if need_grad:
                _accumulate_rows(grad_hidden, grad_weight, d_logits.float(), hidden[rows], head, rows, vocab)
        if need_grad:
            _push_into_continuations(hidden, head, targets, teacher, cap, tau, step, span_grad, grad_hidden,
                                     grad_weight, vocab)
        return _FusedHeadObjective.finish(ctx, sums, config, weight, grad_hidden, grad_weight, need_grad)


def _push_into_continuations(hidden, head, targets, teacher: CrossRows, cap, tau, step, span_grad, grad_hidden,
                             grad_weight, vocab) -> None:
    """Pass C: the objective's derivative with respect to each span's merged student log-prob, times
    ``d log p_S(target) / dz`` at each of the span's later rows."""
    for start in range(0, teacher.continued.shape[0], step):
        rows = teacher.continued[start:start + step]
        scale = span_grad[teacher.continued_span[start:start + step]]
        with torch.enable_grad():
            logits = (hidden[rows] @ head.T).detach().requires_grad_(True)
            z = softcap(logits, cap).float() / tau
            logp = z.gather(1, targets[rows][:, None])[:, 0] - torch.logsumexp(z, -1)
            (d_logits,) = torch.autograd.grad((scale * logp).sum(), logits)
        _accumulate_rows(grad_hidden, grad_weight, d_logits.float(), hidden[rows], head, rows, vocab)


def cross_objective_sums(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, config, *, vocab: int,
                         teacher: CrossRows, cap: float | None = None,
                         weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objective sum, CE sum, KD sum) with a cross-tokenizer teacher; the contract of
    :func:`cotdistill.losses.fused_objective_sums`, which calls it."""
    if hidden.shape[0] == 0:  # keep the graph connected for DDP: a zero that depends on the weights
        zero = weight.sum() * 0.0 + hidden.sum() * 0.0
        return zero, zero.detach().clone(), zero.detach().clone()
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _CrossHeadObjective.apply(hidden, weight, targets, teacher, config, vocab, cap, need_grad, weights)
