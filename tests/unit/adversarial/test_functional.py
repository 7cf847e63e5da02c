"""The pure tensor functions under every method: divergences against torch's own KL, and the three update
rules, each against its formula.

The divergences run in float32 and are compared with torch's KL in float64 of the same float32 logits, within
a bound on float32's rounding (`kl_error_bounds`) rather than a tolerance that one CPU's kernels happen to
meet (with ATen's vector kernels off, ATEN_CPU_CAPABILITY=default, KL(p || q)'s value was 1.3x the float64
default tolerance it was compared under)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alum.adversarial import functional as AF


def logits(seed: int, rows: int = 6, classes: int = 11, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, classes, generator=g) * scale).requires_grad_()


def torch_kl(target_logits, input_logits, reduction="batchmean"):
    """KL(softmax(target) || softmax(input)) as torch computes it (float64)."""
    return F.kl_div(F.log_softmax(input_logits.double(), -1), F.log_softmax(target_logits.double(), -1),
                    reduction=reduction, log_target=True)


U = 2.0**-24  # float32's unit roundoff


def kl_error_bounds(a_logits, b_logits, reduction):
    """Bounds on the float32 error of a KL between softmax(a) and softmax(b), either direction, over rows of
    C classes: (for its value, for each element of its gradient w.r.t. either side's logits).

    A float32 log-softmax l_i = z_i - max - log(sum_j exp(z_j - max)) rounds C - 1 times in the sum and once
    each in the subtraction, the exp, the log and the last subtraction, every time relative to a number no
    larger than |l_i| + log C + 1 (here log C < 1): |error of l_i| <= (C + 4) u (|l_i| + 1), and p_i = exp(l_i)
    adds one rounding relative to p_i. A KL row sums C terms p_i (l_i - m_i) (C more roundings, each relative
    to such a term), so with s_i = (p_i + q_i)(|l_i| + |m_i| + 1), p and q the two sides' probabilities and l,
    m their log-probabilities, its value is off by at most (C + 8) u * sum_i s_i (its "size" S_row). The
    gradient's elements are p_i - q_i or p_i (l_i - m_i - KL_row): off by at most (C + 8) u (s_i + p_i S_row).
    Over the batch the values add up; a mean divides both by the rows."""
    la, lb = F.log_softmax(a_logits.detach().double(), -1), F.log_softmax(b_logits.detach().double(), -1)
    pa, pb = la.exp(), lb.exp()
    rows, classes = la.shape
    k = (classes + 8) * U / (rows if reduction == "mean" else 1)
    s = (pa + pb) * (la.abs() + lb.abs() + 1)
    size = s.sum(-1, keepdim=True)
    return k * float(size.sum()), k * (s + (pa + pb) * size)


def assert_within(got, want, bound):
    """|got - want| <= bound, elementwise (bound a tensor of want's shape, or a number)."""
    error = (got.detach().double() - want.detach().double()).abs()
    assert (error <= bound).all(), f"error {float(error.max()):.3g} against a bound of {float(torch.as_tensor(bound).min()):.3g}"


@pytest.mark.parametrize("chunk", [AF.CHUNK_ELEMENTS, 20])  # one chunk; chunks of one row
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_kl_from_fixed_is_kl_of_clean_to_moving(monkeypatch, chunk, reduction):
    """The ascent objective of ALUM/SMART and VAT: KL(sg(q) || p), gradient to p's logits only."""
    monkeypatch.setattr(AF, "CHUNK_ELEMENTS", chunk)
    q, z = logits(0), logits(1)
    fast = AF.kl_from_fixed(q.log_softmax(-1), z, reduction)
    reference = torch_kl(q.detach(), z, "batchmean" if reduction == "mean" else "sum")
    value_bound, grad_bound = kl_error_bounds(q, z, reduction)
    assert_within(fast, reference, value_bound)
    (g_fast,) = torch.autograd.grad(fast, z)
    (g_ref,) = torch.autograd.grad(reference, z)
    assert_within(g_fast, g_ref, grad_bound)
    # and not the other direction, KL(p || q), which the ascent used before (same at p = q, not elsewhere)
    other = torch_kl(z.detach(), q.detach())
    assert abs(float(fast.detach()) / (6 if reduction == "sum" else 1) - float(other)) > 1e-2


@pytest.mark.parametrize("chunk", [AF.CHUNK_ELEMENTS, 20])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_kl_to_fixed_is_kl_of_moving_to_fixed(monkeypatch, chunk, reduction):
    monkeypatch.setattr(AF, "CHUNK_ELEMENTS", chunk)
    z, q = logits(2), logits(3)
    fast = AF.kl_to_fixed(z, q.log_softmax(-1), reduction)
    reference = torch_kl(z, q.detach(), "batchmean" if reduction == "mean" else "sum")
    value_bound, grad_bound = kl_error_bounds(z, q, reduction)
    assert_within(fast, reference, value_bound)
    assert_within(torch.autograd.grad(fast, z)[0], torch.autograd.grad(reference, z)[0], grad_bound)


@pytest.mark.parametrize("chunk", [AF.CHUNK_ELEMENTS, 20])
def test_symmetric_kl_detaches_each_side(monkeypatch, chunk):
    """symKL(a, b) = KL(sg(b) || a) + KL(sg(a) || b): a's gradient comes from the first term only."""
    monkeypatch.setattr(AF, "CHUNK_ELEMENTS", chunk)
    a, b = logits(4), logits(5)
    value_bound, grad_bound = kl_error_bounds(a, b, "mean")
    for cached in (None, a.log_softmax(-1)):
        fast = AF.symmetric_kl(a, b, log_a=cached)
        reference = torch_kl(b.detach(), a) + torch_kl(a.detach(), b)
        assert_within(fast, reference, 2 * value_bound)  # two KLs
        ga, gb = torch.autograd.grad(fast, [a, b])
        assert_within(ga, torch.autograd.grad(torch_kl(b.detach(), a), a)[0], grad_bound)
        assert_within(gb, torch.autograd.grad(torch_kl(a.detach(), b), b)[0], grad_bound)


def test_divergences_are_zero_for_equal_inputs_and_empty_rows():
    z = logits(6)
    assert float(AF.kl_from_fixed(z.log_softmax(-1), z)) == pytest.approx(0, abs=1e-6)
    assert float(AF.symmetric_kl(z, z)) == pytest.approx(0, abs=1e-6)
    empty = torch.zeros(0, 11, requires_grad=True)
    assert float(AF.kl_from_fixed(empty, empty)) == 0 and float(AF.symmetric_kl(empty, empty)) == 0


def pair(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g) * 1e-3


@pytest.mark.parametrize("p", ["linf", "l2"])
@pytest.mark.parametrize("level", ["token", "example"])
def test_gradient_rule_is_eta_times_the_normalised_gradient_and_forgets_the_start(p, level):
    """mt-dnn 4b92661 (ALUM) / 0d6201e (SMART): delta = eta * g / (||g|| + 1e-6); the start is discarded."""
    delta, grad = pair(0)
    out = AF.ascent_step(delta, grad, 1e-3, constraint="gradient", p=p, level=level, eps=123.0)
    if p == "linf" and level == "token":
        expected = 1e-3 * grad / (grad.abs().amax(-1, keepdim=True) + 1e-6)
    else:
        expected = 1e-3 * grad / (AF.norm(grad, p, level) + 1e-6)
    # the same norm; (eta * g) / n against eta * (g / n): two roundings each side, 4u = 2.4e-7 apart at most
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(out, AF.ascent_step(delta * 7, grad, 1e-3, constraint="gradient", p=p, level=level,
                                                   eps=123.0))
    # the guard is the released code's 1e-6: a gradient far below it gives a delta far below eta
    tiny = AF.ascent_step(delta, grad * 1e-6, 1e-3, constraint="gradient", p=p, level=level, eps=1.0)
    assert AF.norm(tiny, p, level).max() < 1e-4


@pytest.mark.parametrize("p", ["linf", "l2"])
@pytest.mark.parametrize("level", ["token", "example"])
def test_normalize_rule_is_the_sum_rescaled_to_unit_norm(p, level):
    """mt-dnn cceaa00 (SMART) / f0b40b6 (ALUM): delta = (delta + eta g) / (||delta + eta g|| + 1e-6)."""
    delta, grad = pair(1)
    out = AF.ascent_step(delta, grad, 0.1, constraint="normalize", p=p, level=level, eps=123.0)
    total = delta + 0.1 * grad
    torch.testing.assert_close(out, total / (AF.norm(total, p, level) + 1e-6))


@pytest.mark.parametrize("p", ["linf", "l2"])
@pytest.mark.parametrize("level", ["token", "example"])
def test_project_rule_steps_along_the_normalised_gradient_then_projects(p, level):
    """The papers: delta = Proj_eps(delta + eta g / ||g||)."""
    delta, grad = pair(2)
    delta = delta * 0.01
    for eps in (10.0, 0.02):  # the projection inactive, then active
        out = AF.ascent_step(delta, grad, 0.05, constraint="project", p=p, level=level, eps=eps)
        step = delta + 0.05 * grad / AF.norm(grad, p, level)
        if p == "linf":
            expected = step.clamp(-eps, eps)
        else:
            n = AF.norm(step, p, level)
            expected = step * torch.where(n > eps, eps / n, torch.ones_like(n))
        torch.testing.assert_close(out, expected)  # float32's defaults (rtol 1.3e-6 = 22u): a few roundings apart
    assert AF.norm(out, p, level).max() <= 0.02 * (1 + (ball_slack(out, level) if p == "l2" else 0))


def test_project_rule_steps_by_sign_for_linf_when_asked():
    """Madry's l-inf PGD: the steepest ascent direction of the l-inf ball is sign(g)."""
    delta, grad = pair(3)
    out = AF.ascent_step(delta * 0, grad, 0.1, constraint="project", p="linf", level="token", eps=1.0, sign=True)
    torch.testing.assert_close(out, 0.1 * grad.sign())
    plain = AF.ascent_step(delta * 0, grad, 0.1, constraint="project", p="linf", level="token", eps=1.0)
    assert not torch.allclose(plain, out)


def ball_slack(x, level):
    """How far float32 may put a projected point outside the l2 ball, relative to eps, measured by a float32
    norm: the projection's norm of d coordinates (d - 1 roundings in the sum of squares, one each in the
    squares and the square root, halved by the square root: (d/2 + 1)u), eps / norm and x * scale (2u), and
    the norm measuring it again ((d/2 + 1)u): (d + 4)u, 2.6e-6 for an example of 5 tokens x 8."""
    d = x.shape[-1] * (x.shape[-2] if level == "example" else 1)
    return (d + 4) * U


def test_project_respects_eps_and_keeps_inside_points():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 8, generator=g) * 3
    for p in ("linf", "l2"):
        for level in ("token", "example"):
            out = AF.project(x, 0.5, p, level)
            slack = ball_slack(x, level) if p == "l2" else 0  # the box of l-inf is a clamp: exact
            assert AF.norm(out, p, level).max() <= 0.5 * (1 + slack)
            assert AF.norm(out, p, level).min() >= 0.5 * (1 - slack)  # every point here was outside
            small = x * 1e-3
            torch.testing.assert_close(AF.project(small, 0.5, p, level), small)


def test_unknown_constraint_is_refused():
    delta, grad = pair(4)
    with pytest.raises(ValueError, match="unknown constraint"):
        AF.ascent_step(delta, grad, 0.1, constraint="clip", p="l2", level="token", eps=1.0)
