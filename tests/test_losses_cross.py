"""Cross-tokenizer KD: ULD's sorted distance by hand, and the span method equal to ordinary KD when both sides share
one tokenizer (values and gradients); merged spans differentiate like the formula."""

from __future__ import annotations

import pytest
import torch

from cotdistill.losses import LossConfig, OnlineRows, fused_objective_sums
from cotdistill.losses_cross import CrossRows, cross_objective_sums, span_divergence, uld_distance


def test_uld_distance_equals_a_hand_computation():
    p = torch.tensor([[0.1, 0.5, 0.2, 0.15, 0.05]])
    q = torch.tensor([[0.6, 0.3, 0.1]])
    # sorted: p 0.5 0.2 0.15 0.1 0.05, q 0.6 0.3 0.1 0 0 -> |−0.1| + |−0.1| + |0.05| + 0.1 + 0.05
    assert uld_distance(p, q).item() == pytest.approx(0.4, abs=1e-6)
    assert uld_distance(q, p).item() == pytest.approx(0.4, abs=1e-6)


def test_uld_distance_is_zero_for_permuted_identical_distributions():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(4, 9), -1)
    q = p[:, torch.randperm(9)]
    assert torch.allclose(uld_distance(p, q), torch.zeros(4), atol=1e-6)
    padded = torch.cat([q, torch.zeros(4, 3)], 1)  # a longer vocabulary with nothing on its extra entries
    assert torch.allclose(uld_distance(p, padded), torch.zeros(4), atol=1e-6)


def _same_tokenizer_rows(hidden_t, weight_t, targets, temperature, mode="spans"):
    """The cross-tokenizer teacher as one tokenizer on both sides gives it: every row a one-token span."""
    n, vocab = targets.shape[0], weight_t.shape[0]
    logp = torch.log_softmax((hidden_t @ weight_t.T).float() / temperature, -1)
    ids = torch.arange(vocab)
    return CrossRows(OnlineRows(hidden_t, weight_t), vocab, targets.clone(), logp.gather(1, targets[:, None])[:, 0],
                     torch.arange(n), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), ids, ids,
                     mode)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("chunk", [0, 5])
def test_spans_with_one_tokenizer_equal_ordinary_kd(kind, temperature, chunk):
    torch.manual_seed(1)
    n, h, vocab = 13, 8, 23
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(vocab, h, requires_grad=True)
    hidden_t, weight_t = torch.randn(n, 6), torch.randn(vocab, 6)
    targets = torch.randint(0, vocab, (n,))
    config = LossConfig(distill_ratio=0.7, kind=kind, temperature=temperature, chunk_size=chunk)
    ours = cross_objective_sums(hidden, weight, targets, config, vocab=vocab,
                                teacher=_same_tokenizer_rows(hidden_t, weight_t, targets, temperature))
    grads = torch.autograd.grad(ours[0], [hidden, weight])
    plain = fused_objective_sums(hidden, weight, targets, config, vocab=vocab, teacher=OnlineRows(hidden_t, weight_t))
    plain_grads = torch.autograd.grad(plain[0], [hidden, weight])
    for a, b in zip(ours, plain):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, plain_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_merged_span_gradient_matches_autograd_of_the_formula():
    """Student rows 0 and 1 form one span (its second token is a continuation): the fused passes must give the
    gradient autograd gives the same divergence written directly."""
    torch.manual_seed(2)
    n, h, v_s, v_t = 4, 6, 11, 7
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v_s, h, requires_grad=True)
    hidden_t, weight_t = torch.randn(3, 5), torch.randn(v_t, 5)
    targets = torch.tensor([3, 4, 1, 9])
    shared_s, shared_t = torch.tensor([0, 1, 3, 5]), torch.tensor([2, 0, 6, 1])
    t_logp_all = torch.log_softmax(hidden_t @ weight_t.T, -1)
    first = torch.tensor([6, 0, 4])
    span_logp = t_logp_all.gather(1, first[:, None])[:, 0] - torch.tensor([0.3, 0.0, 0.2])
    rows = CrossRows(OnlineRows(hidden_t, weight_t), v_t, first, span_logp, torch.tensor([0, 2, 3]), torch.tensor([1]),
                     torch.tensor([0]), shared_s, shared_t, "spans")
    config = LossConfig(distill_ratio=1.0, chunk_size=2)
    ours = cross_objective_sums(hidden, weight, targets, config, vocab=v_s, teacher=rows)
    grads = torch.autograd.grad(ours[0], [hidden, weight])

    s_logp = torch.log_softmax(hidden @ weight.T, -1)
    rest = torch.stack([s_logp[1, 4], torch.zeros(()), torch.zeros(())])
    kd = span_divergence(s_logp[[0, 2, 3]], targets[[0, 2, 3]], rest, t_logp_all, first, span_logp, shared_s,
                         shared_t, "forward_kl").sum()
    direct = torch.autograd.grad(kd, [hidden, weight])
    assert torch.allclose(ours[2], kd, rtol=1e-5)
    for a, b in zip(grads, direct):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_span_divergence_is_zero_when_the_sides_agree_on_everything():
    """Identical distributions over identically spelled vocabularies (in another id order) and equal span
    probabilities: nothing to learn."""
    torch.manual_seed(3)
    logits = torch.randn(2, 5)
    perm = torch.tensor([3, 0, 4, 1, 2])  # teacher id perm[i] spells student id i
    s_logp = torch.log_softmax(logits, -1)
    t_logp = torch.empty_like(s_logp)
    t_logp[:, perm] = s_logp
    first_s = torch.tensor([1, 4])
    span = s_logp.gather(1, first_s[:, None])[:, 0] - 0.5
    kd = span_divergence(s_logp, first_s, torch.full((2,), -0.5), t_logp, perm[first_s], span, torch.arange(5), perm,
                         "forward_kl")
    assert torch.allclose(kd, torch.zeros(2), atol=1e-6)
