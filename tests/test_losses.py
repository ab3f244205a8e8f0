"""Every loss equals its plain formula (values and gradients); the chunked and sparse paths equal the dense one."""

from __future__ import annotations

import math

import pytest
import torch

from cotdistill.losses import (
    KD_KINDS,
    CachedRows,
    LossConfig,
    OnlineRows,
    combine,
    cross_entropy_sum,
    distill_sums,
    divergence_from_logprobs,
    fused_objective_sums,
    per_token_divergence,
    softcap,
)
from cotdistill.losses_reference import chunked_distill_sums, sparse_logprobs


def naive(student_logits, teacher_logits, kind, beta=0.5, alpha=0.1, temperature=1.0):
    """The textbook formulas in float64 with softmax and log written out."""
    p_s = torch.softmax(student_logits.double() / temperature, -1)
    p_t = torch.softmax(teacher_logits.double() / temperature, -1)

    def kl(p, q):
        return (p * (p.log() - q.log())).sum(-1)

    if kind == "forward_kl":
        return kl(p_t, p_s)
    if kind == "reverse_kl":
        return kl(p_s, p_t)
    if kind == "jsd":
        if beta == 0:
            return kl(p_t, p_s)
        if beta == 1:
            return kl(p_s, p_t)
        m = beta * p_t + (1 - beta) * p_s
        return beta * kl(p_t, m) + (1 - beta) * kl(p_s, m)
    if kind == "skew_kl":
        return kl(p_t, alpha * p_t + (1 - alpha) * p_s)
    if kind == "skew_reverse_kl":
        return kl(p_s, alpha * p_s + (1 - alpha) * p_t)
    return 0.5 * (p_t - p_s).abs().sum(-1)


@pytest.mark.parametrize("kind", KD_KINDS)
@pytest.mark.parametrize("shape", [(1, 2), (7, 13), (33, 250)])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_divergence_and_gradient_equal_formula(kind, shape, temperature):
    torch.manual_seed(0)
    s = (torch.randn(shape) * 3).requires_grad_()
    t = torch.randn(shape) * 3
    ours = per_token_divergence(s, t, kind, beta=0.3, alpha=0.2, temperature=temperature)
    s64 = s.detach().double().requires_grad_()
    ref = naive(s64, t.double(), kind, beta=0.3, alpha=0.2, temperature=temperature)
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(s.grad.double(), s64.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 2e-2), (torch.float16, 5e-3)])
def test_low_precision_inputs_are_upcast(dtype, tol):
    torch.manual_seed(1)
    s, t = torch.randn(5, 40), torch.randn(5, 40)
    ours = per_token_divergence(s.to(dtype), t.to(dtype), "forward_kl")
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), naive(s.to(dtype), t.to(dtype), "forward_kl"), atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", KD_KINDS)
def test_equal_inputs_give_zero(kind):
    x = torch.randn(4, 9)
    assert per_token_divergence(x, x.clone(), kind).abs().max() < 1e-6


def test_jsd_endpoints_and_skew_zero_reduce_to_kl():
    s, t = torch.randn(6, 11), torch.randn(6, 11)
    fwd, rev = per_token_divergence(s, t, "forward_kl"), per_token_divergence(s, t, "reverse_kl")
    torch.testing.assert_close(per_token_divergence(s, t, "jsd", beta=0.0), fwd)
    torch.testing.assert_close(per_token_divergence(s, t, "jsd", beta=1.0), rev)
    torch.testing.assert_close(per_token_divergence(s, t, "skew_kl", alpha=0.0), fwd)
    torch.testing.assert_close(per_token_divergence(s, t, "skew_reverse_kl", alpha=0.0), rev)


def test_hand_computed_forward_kl():
    # teacher p = (0.5, 0.5), student q = (0.8, 0.2): KL = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2)
    t = torch.log(torch.tensor([[0.5, 0.5]]))
    s = torch.log(torch.tensor([[0.8, 0.2]]))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert per_token_divergence(s, t, "forward_kl").item() == pytest.approx(expected, abs=1e-6)
    assert per_token_divergence(s, t, "tvd").item() == pytest.approx(0.3, abs=1e-6)


def test_cross_entropy_sum_and_combine():
    logits, targets = torch.randn(5, 7), torch.tensor([0, 3, 6, 1, 2])
    ref = -torch.log_softmax(logits.double(), -1)[torch.arange(5), targets].sum()
    assert cross_entropy_sum(logits, targets).item() == pytest.approx(ref.item(), abs=1e-5)
    cfg = LossConfig(distill_ratio=0.25, temperature=2.0)  # KD × τ² by default, as Hinton et al. and the paper
    assert combine(torch.tensor(2.0), torch.tensor(1.0), cfg).item() == pytest.approx(0.75 * 2 + 0.25 * 4 * 1.0)
    plain = LossConfig(distill_ratio=0.25, temperature=2.0, scale_by_temperature=False)
    assert combine(torch.tensor(2.0), torch.tensor(1.0), plain).item() == pytest.approx(0.75 * 2 + 0.25 * 1.0)


@pytest.mark.parametrize("kind", ["forward_kl", "jsd", "tvd"])
@pytest.mark.parametrize("chunk", [0, 1, 5, 64])  # 0: every position in one piece
def test_chunked_equals_unchunked_values_and_grads(kind, chunk):
    torch.manual_seed(2)
    n, h, v, vpad = 23, 8, 30, 34  # weights with padding rows beyond the shared vocab
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(vpad, h, requires_grad=True)
    t_hidden, t_weight = torch.randn(n, 12), torch.randn(vpad + 2, 12)
    targets = torch.randint(0, v, (n,))
    cfg = LossConfig(kind=kind, chunk_size=chunk, temperature=1.5)
    ce, kd = chunked_distill_sums(hidden, weight, targets, cfg, vocab=v, teacher=OnlineRows(t_hidden, t_weight))
    (ce + kd).backward()
    g_h, g_w = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ce_ref, kd_ref = distill_sums((hidden @ weight.T)[:, :v], (t_hidden @ t_weight.T)[:, :v], targets, cfg)
    (ce_ref + kd_ref).backward()
    torch.testing.assert_close(torch.stack([ce, kd]), torch.stack([ce_ref, kd_ref]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_h, hidden.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_w, weight.grad, atol=1e-5, rtol=1e-5)


def _fused_and_reference(dtype: torch.dtype, seed: int, n: int, vpad: int, teacher_vpad: int, weight_scale: float):
    """Student hidden states and head in ``dtype`` (leaves), a teacher's in ``dtype``, and float32 copies of the
    student's (leaves of the reference, which reads the same rounded numbers at full precision)."""
    torch.manual_seed(seed)
    h = 8
    hidden = torch.randn(n, h).to(dtype).requires_grad_()
    weight = (weight_scale * torch.randn(vpad, h)).to(dtype).requires_grad_()
    t_hidden, t_weight = torch.randn(n, 12).to(dtype), (weight_scale * torch.randn(teacher_vpad, 12)).to(dtype)
    return (hidden, weight, t_hidden, t_weight, hidden.detach().float().requires_grad_(),
            weight.detach().float().requires_grad_())


# per input dtype, (atol, rtol): of the CE and KD sums, and of the gradients with atol a fraction of the reference
# gradient's largest entry (one figure for heads of any scale). float32: the sums' rounding only. bfloat16: the
# fused path multiplies hidden states and head in the input dtype, so each logit is rounded to 8 significant bits
# (error up to 2^-9 of it, 0.03 at |z| = 16) before the float32 loss; softmax turns a logit error δ into a relative
# probability error of about δ, and the hidden states' gradient is stored in bfloat16 as well. Measured over these
# tests' parameters: sums within 7e-4 relative, gradients within 8.6e-3 of their largest entry; the tolerances
# allow two to three times that.
FUSED_TOLERANCE = {torch.float32: {"sums": (1e-5, 1e-5), "grads": (1e-6, 1e-5)},
                   torch.bfloat16: {"sums": (1e-3, 2e-3), "grads": (2e-2, 2e-2)}}


def _assert_sums_close(got: torch.Tensor, want: torch.Tensor, tolerance: tuple[float, float]) -> None:
    atol, rtol = tolerance
    torch.testing.assert_close(got.detach().double(), want.detach().double(), atol=atol, rtol=rtol)


def _assert_grads_close(got: torch.Tensor, want: torch.Tensor, tolerance: tuple[float, float]) -> None:
    atol, rtol = tolerance
    want = want.double()
    torch.testing.assert_close(got.double(), want, atol=atol * want.abs().max().item(), rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", KD_KINDS)
@pytest.mark.parametrize("chunk", [0, 1, 5, 64])
def test_fused_objective_equals_the_unchunked_objective_values_and_grads(kind, chunk, dtype):
    """The gradient computed inside the forward, scaled in the backward by what the caller multiplies the
    objective with, equals autograd's through materialised logits (soft-capped too), computed in float32 from
    the same (rounded) inputs."""
    n, v, vpad = 23, 30, 34
    hidden, weight, t_hidden, t_weight, hidden_ref, weight_ref = _fused_and_reference(dtype, 3, n, vpad, vpad + 2, 1)
    targets = torch.randint(0, v, (n,))
    cfg = LossConfig(kind=kind, chunk_size=chunk, temperature=1.5, distill_ratio=0.3)
    objective, ce, kd = fused_objective_sums(hidden, weight, targets, cfg, vocab=v,
                                             teacher=OnlineRows(t_hidden, t_weight, cap=5.0), cap=4.0)
    assert not ce.requires_grad and not kd.requires_grad
    (objective * 0.37).backward()
    assert hidden.grad.dtype == weight.grad.dtype == dtype
    s_logits = softcap((hidden_ref @ weight_ref.T)[:, :v], 4.0)
    t_logits = softcap((t_hidden.float() @ t_weight.float().T)[:, :v], 5.0)
    ce_ref, kd_ref = distill_sums(s_logits, t_logits, targets, cfg)
    (combine(ce_ref, kd_ref, cfg) * 0.37).backward()
    tolerance = FUSED_TOLERANCE[dtype]
    _assert_sums_close(torch.stack([ce, kd]), torch.stack([ce_ref, kd_ref]), tolerance["sums"])
    _assert_sums_close(objective, combine(ce_ref, kd_ref, cfg), tolerance["sums"])
    _assert_grads_close(hidden.grad, hidden_ref.grad, tolerance["grads"])
    _assert_grads_close(weight.grad, weight_ref.grad, tolerance["grads"])
    assert weight.grad[v:].abs().sum() == 0  # padding rows beyond the shared vocabulary get no gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("kind", "beta"), [("forward_kl", 0.5), ("jsd", 0.0)])
@pytest.mark.parametrize("tau", [1.0, 2.0])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("with_teacher", [True, False])
def test_closed_form_gradient_equals_autograd(kind, beta, tau, ratio, with_teacher, dtype):
    """CE + forward KL without soft-capping takes the written-out gradient (fewer [chunk, V] buffers): it must
    equal autograd's through materialised logits, in float32 from the same (rounded) inputs, for every
    temperature, ratio, and without a teacher."""
    from cotdistill.losses import _has_closed_form

    n, v, vpad = 19, 30, 33
    hidden, weight, t_hidden, t_weight, hidden_ref, weight_ref = _fused_and_reference(dtype, 5, n, vpad, vpad, 2)
    targets = torch.randint(0, v, (n,))
    cfg = LossConfig(kind=kind, beta=beta, chunk_size=4, temperature=tau, distill_ratio=ratio)
    assert _has_closed_form(cfg, None) and not _has_closed_form(cfg, 30.0)
    teacher = OnlineRows(t_hidden, t_weight) if with_teacher else None
    objective, ce, kd = fused_objective_sums(hidden, weight, targets, cfg, vocab=v, teacher=teacher)
    (objective * 1.7).backward()
    t_logits = (t_hidden.float() @ t_weight.float().T)[:, :v] if with_teacher else None
    ce_ref, kd_ref = distill_sums((hidden_ref @ weight_ref.T)[:, :v], t_logits, targets, cfg)
    (combine(ce_ref, kd_ref, cfg) * 1.7).backward()
    # float32: these sums reach ~220, where float32's spacing is 1.5e-5
    sums = (1e-4, 1e-5) if dtype == torch.float32 else FUSED_TOLERANCE[dtype]["sums"]
    _assert_sums_close(torch.stack([ce, kd]), torch.stack([ce_ref, kd_ref]), sums)
    _assert_grads_close(hidden.grad, hidden_ref.grad, FUSED_TOLERANCE[dtype]["grads"])
    _assert_grads_close(weight.grad, weight_ref.grad, FUSED_TOLERANCE[dtype]["grads"])


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "tvd"])
def test_a_cached_teacher_is_read_as_its_dense_reconstruction(kind):
    """Top-k entries plus the tail mass spread evenly: fused (closed form or autograd) and chunked losses equal the
    plain loss against that dense reconstruction, values and gradients."""
    from cotdistill.losses import reconstruct_teacher_logp

    torch.manual_seed(4)
    n, h, v, k = 17, 8, 30, 6
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    t_logp = torch.log_softmax(2 * torch.randn(n, v), -1)
    top_logp, top_ids = t_logp.topk(k, -1)
    tail = torch.log((1 - top_logp.exp().sum(-1)) / (v - k))
    recon = reconstruct_teacher_logp(top_ids, top_logp, tail, v)
    assert torch.allclose(recon.exp().sum(-1), torch.ones(n), atol=1e-5)
    assert torch.equal(recon.gather(1, top_ids), top_logp)
    targets = torch.randint(0, v, (n,))
    cfg = LossConfig(kind=kind, chunk_size=4, temperature=1.5)
    cached = CachedRows(top_ids, top_logp, tail)
    results = []
    for run in ("fused", "chunked", "plain"):
        if run == "fused":
            objective = fused_objective_sums(hidden, weight, targets, cfg, vocab=v, teacher=cached)[0]
        elif run == "chunked":
            objective = combine(*chunked_distill_sums(hidden, weight, targets, cfg, vocab=v, teacher=cached), cfg)
        else:  # the reconstruction's log-probs, as logits at τ
            objective = combine(*distill_sums(hidden @ weight.T, recon * cfg.temperature, targets, cfg), cfg)
        objective.backward()
        results.append((objective.detach(), hidden.grad.clone(), weight.grad.clone()))
        hidden.grad = weight.grad = None
    for got in results[:2]:
        for a, b in zip(got, results[2]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_objective_without_grad_and_with_no_positions():
    weight = torch.randn(10, 4, requires_grad=True)
    objective, ce, kd = fused_objective_sums(torch.zeros(0, 4), weight, torch.zeros(0, dtype=torch.long),
                                             LossConfig(), vocab=10)
    assert objective.item() == 0 and ce.item() == 0
    objective.backward()
    assert weight.grad is not None and weight.grad.abs().sum() == 0
    with torch.no_grad():
        objective, ce, kd = fused_objective_sums(torch.randn(5, 4), weight, torch.zeros(5, dtype=torch.long),
                                                 LossConfig(distill_ratio=0.0), vocab=10)
    assert not objective.requires_grad and objective.item() == pytest.approx(ce.item()) and kd.item() == 0


def test_no_supervised_positions_gives_connected_zero():
    weight = torch.randn(10, 4, requires_grad=True)
    ce, kd = chunked_distill_sums(torch.zeros(0, 4), weight, torch.zeros(0, dtype=torch.long), LossConfig(),
                                  vocab=10, teacher=OnlineRows(torch.zeros(0, 4), torch.randn(10, 4)))
    assert ce.item() == 0 and kd.item() == 0
    ce.backward()
    assert weight.grad is not None and weight.grad.abs().sum() == 0


@pytest.mark.parametrize("kind", KD_KINDS)
def test_sparse_topk_with_k_equal_vocab_equals_dense(kind):
    torch.manual_seed(3)
    s = torch.randn(9, 20, requires_grad=True)
    t = torch.randn(9, 20)
    t_logp = torch.log_softmax(t / 2.0, -1)
    logp, ids = t_logp.topk(20, -1)
    s_b, t_b = sparse_logprobs(s, ids, logp, temperature=2.0)
    sparse = divergence_from_logprobs(s_b, t_b, kind, beta=0.4, alpha=0.2)
    dense = per_token_divergence(s, t, kind, beta=0.4, alpha=0.2, temperature=2.0)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    g_sparse = torch.autograd.grad(sparse.sum(), s)[0]
    g_dense = torch.autograd.grad(per_token_divergence(s, t, kind, beta=0.4, alpha=0.2, temperature=2.0).sum(), s)[0]
    torch.testing.assert_close(g_sparse, g_dense, atol=1e-5, rtol=1e-4)


def test_sparse_topk_small_k_keeps_tail_mass():
    s, t = torch.randn(3, 50), torch.randn(3, 50)
    logp, ids = torch.log_softmax(t, -1).topk(5, -1)
    s_b, t_b = sparse_logprobs(s, ids, logp, temperature=1.0)
    torch.testing.assert_close(t_b.exp().sum(-1), torch.ones(3))
    torch.testing.assert_close(s_b.exp().sum(-1), torch.ones(3))


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_still_do():
    torch.manual_seed(6)
    hidden = torch.randn(9, 8, requires_grad=True)
    weight = torch.randn(30, 8)  # frozen, as under LoRA
    teacher = OnlineRows(torch.randn(9, 8), torch.randn(30, 8))
    objective, _, _ = fused_objective_sums(hidden, weight, torch.randint(0, 30, (9,)), LossConfig(chunk_size=4),
                                           vocab=30, teacher=teacher)
    objective.backward()
    assert weight.grad is None and hidden.grad is not None and hidden.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl"])  # closed-form gradient, autograd's
@pytest.mark.parametrize("path", ["fused", "chunked", "plain"])
@pytest.mark.parametrize("teacher", ["online", "cached", None])
def test_weighted_sums_equal_the_weighted_formula_values_and_grads(kind, path, teacher):
    """``weights`` (the per-sequence mean's 1 / n_s per position) multiply each position's CE and KD, in every path:
    values and gradients equal Σ w·(plain per-position formula)."""
    torch.manual_seed(7)
    n, h, v, tau = 13, 8, 30, 1.5
    hidden = torch.randn(n, h, requires_grad=True)
    weight = (2 * torch.randn(v, h)).requires_grad_()
    targets = torch.randint(0, v, (n,))
    weights = torch.tensor([1 / 3] * 3 + [1 / 8] * 8 + [1 / 2] * 2)
    t_logits = 3 * torch.randn(n, v)
    t_logp = torch.log_softmax(t_logits / tau, -1)
    rows = {"online": OnlineRows(t_logits, torch.eye(v)),
            "cached": CachedRows(t_logp.topk(v, -1)[1], t_logp.topk(v, -1)[0], torch.full((n,), -80.0)),
            None: None}[teacher]
    cfg = LossConfig(kind=kind, chunk_size=4, temperature=tau, distill_ratio=0.4)
    if path == "fused":
        objective, ce, kd = fused_objective_sums(hidden, weight, targets, cfg, vocab=v, weights=weights, teacher=rows)
    elif path == "chunked":
        ce, kd = chunked_distill_sums(hidden, weight, targets, cfg, vocab=v, weights=weights, teacher=rows)
        objective = combine(ce, kd, cfg)
    else:
        ce, kd = distill_sums(hidden @ weight.T, t_logits if teacher else None, targets, cfg, weights)
        objective = combine(ce, kd, cfg)
    objective.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    logits = hidden @ weight.T
    ce_rows = -torch.log_softmax(logits, -1).gather(1, targets[:, None])[:, 0]
    kd_rows = naive(logits, t_logits, kind, temperature=tau) if teacher else torch.zeros(n)
    ce_ref, kd_ref = (ce_rows * weights).sum(), (kd_rows * weights).sum()
    combine(ce_ref, kd_ref, cfg).backward()
    torch.testing.assert_close(torch.stack([ce, kd]).detach().double(), torch.stack([ce_ref, kd_ref]).double(),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], hidden.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[1], weight.grad, atol=1e-5, rtol=1e-5)
    assert kd.item() > 0.1 or teacher is None


def test_weights_of_ones_change_nothing():
    torch.manual_seed(8)
    hidden, weight, targets = torch.randn(11, 8), torch.randn(30, 8), torch.randint(0, 30, (11,))
    teacher = OnlineRows(torch.randn(11, 8), torch.randn(30, 8))
    plain = fused_objective_sums(hidden, weight, targets, LossConfig(chunk_size=4), vocab=30, teacher=teacher)
    ones = fused_objective_sums(hidden, weight, targets, LossConfig(chunk_size=4), vocab=30, weights=torch.ones(11),
                                teacher=teacher)
    torch.testing.assert_close(torch.stack(ones), torch.stack(plain))
