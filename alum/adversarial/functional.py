"""Pure tensor functions of the perturbation core: divergences, norms, constraint steps.

Perturbations have shape (batch, tokens, dim). A norm is taken either per token (over `dim`) or per
example (over tokens and dim). Everything is computed in float32, whatever dtype the model runs in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Level = Literal["token", "example"]
Norm = Literal["l2", "linf"]

GUARD = 1e-6  # the official ALUM/SMART code's guard when dividing by a norm


def f32(x: Tensor) -> Tensor:
    """x in float32, or wider if it already is (a float64 model keeps its precision)."""
    return x if x.dtype == torch.float64 else x.float()


def kl(p_logits: Tensor, q_logits: Tensor, reduction: str = "mean") -> Tensor:
    """KL(p || q) between the softmax distributions of two logit tensors, averaged (or summed) over rows."""
    p_logits, q_logits = f32(p_logits), f32(q_logits)
    rows = p_logits.reshape(-1, p_logits.shape[-1])
    if rows.shape[0] == 0:  # no masked position in this batch
        return p_logits.sum() * 0 + q_logits.sum() * 0
    log_p = F.log_softmax(rows, dim=-1)
    log_q = F.log_softmax(q_logits.reshape(-1, q_logits.shape[-1]), dim=-1)
    per_row = (log_p.exp() * (log_p - log_q)).sum(-1)
    return per_row.sum() if reduction == "sum" else per_row.mean()


CHUNK_ELEMENTS = 1 << 20  # floats per temporary in the chunked KLs (4 MB)


def _row_chunks(rows: Tensor) -> Iterator[slice]:
    """Row slices of about CHUNK_ELEMENTS floats each.

    On a CPU, a fresh (rows x 30k vocabulary) temporary is a new mapping whose pages fault in on first
    touch, and it is larger than the cache: an elementwise pass over one cost about 3x an in-place pass.
    Chunks keep every temporary small enough to be reused by the allocator and to stay in cache."""
    step = max(1, CHUNK_ELEMENTS // max(1, rows.shape[-1]))
    for start in range(0, rows.shape[0], step):
        yield slice(start, start + step)


class _KLFromLogProbs(torch.autograd.Function):
    """sum over rows of KL(p || q), p = softmax(z), q fixed (given as log-probabilities, no gradient).

    The gradient w.r.t. the logits has a closed form, p * (log p - log q - KL_row), computed in the
    forward pass chunk by chunk: with a 30k-token vocabulary, the elementwise passes over (rows, vocab)
    cost more than a tiny model, and autograd's chain through log-softmax, exp, sub and mul takes about
    twice as many passes, each over a fresh full-size tensor."""

    @staticmethod
    def forward(ctx, logits: Tensor, log_q: Tensor) -> Tensor:
        grad = torch.empty_like(logits)
        total = logits.new_zeros(())
        for s in _row_chunks(logits):
            log_p = torch.log_softmax(logits[s], dim=-1)
            p = log_p.exp()
            diff = log_p.sub_(log_q[s])
            per_row = torch.linalg.vecdot(p, diff).unsqueeze(-1)
            total += per_row.sum()
            torch.mul(p, diff.sub_(per_row), out=grad[s])
        ctx.grad = grad
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        g, ctx.grad = ctx.grad, None  # backward runs once: the buffer can be scaled in place
        return g.mul_(grad), None


class _KLToLogits(torch.autograd.Function):
    """sum over rows of KL(q || p), p = softmax(z), q fixed (given as log-probabilities, no gradient).

    The gradient w.r.t. the logits is p - q; like `_KLFromLogProbs`, it is written chunk by chunk in the
    forward pass."""

    @staticmethod
    def forward(ctx, logits: Tensor, log_q: Tensor) -> Tensor:
        grad = torch.empty_like(logits)
        total = logits.new_zeros(())
        for s in _row_chunks(logits):
            log_p = torch.log_softmax(logits[s], dim=-1)
            q = log_q[s].exp()
            total += torch.dot(q.reshape(-1), (log_q[s] - log_p).reshape(-1))
            torch.sub(log_p.exp_(), q, out=grad[s])
        ctx.grad = grad
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        g, ctx.grad = ctx.grad, None
        return g.mul_(grad), None


class _SymmetricKL(torch.autograd.Function):
    """sum over rows of KL(sg(b) || a) + KL(sg(a) || b) for logits a, b: each side's target detached.

    Its gradient is softmax(a) - softmax(b) for a and the opposite for b, so only that difference is
    kept; it is computed in row chunks, as in `_KLFromLogProbs`."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, log_a: Tensor | None) -> Tensor:
        # Both signs are written while each chunk is in cache: negating in backward is another full pass.
        diff_p, neg_diff_p = torch.empty_like(a), torch.empty_like(a)
        total = a.new_zeros(())
        for s in _row_chunks(a):
            la = torch.log_softmax(a[s], dim=-1) if log_a is None else log_a[s]
            lb = torch.log_softmax(b[s], dim=-1)
            diff_log = la - lb
            torch.sub(la.exp(), lb.exp_(), out=diff_p[s])
            torch.neg(diff_p[s], out=neg_diff_p[s])
            total += torch.dot(diff_p[s].reshape(-1), diff_log.reshape(-1))
        ctx.grads = diff_p, neg_diff_p
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        (ga, gb), ctx.grads = ctx.grads, None  # backward runs once: the buffers can be scaled in place
        return ga.mul_(grad), gb.mul_(grad), None


def _rows(x: Tensor) -> Tensor:
    return f32(x).reshape(-1, x.shape[-1])


def kl_to_fixed(logits: Tensor, log_q: Tensor, reduction: str = "mean") -> Tensor:
    """KL(softmax(logits) || q) with q fixed: the half of SMART's proximal term that moves the student
    (`Divergence.moving_to_fixed`); ALUM's and SMART's ascent objective is the other direction, `kl_from_fixed`."""
    rows = _rows(logits)
    if rows.shape[0] == 0:
        return logits.sum() * 0
    total = _KLFromLogProbs.apply(rows, _rows(log_q).detach())
    return total if reduction == "sum" else total / rows.shape[0]


def kl_from_fixed(log_q: Tensor, logits: Tensor, reduction: str = "mean") -> Tensor:
    """KL(q || softmax(logits)) with q fixed: the ascent objective of the released ALUM/SMART code
    (`kl_div(log_softmax(adv), softmax(clean).detach(), 'batchmean')`) and of VAT."""
    rows = _rows(logits)
    if rows.shape[0] == 0:
        return logits.sum() * 0
    total = _KLToLogits.apply(rows, _rows(log_q).detach())
    return total if reduction == "sum" else total / rows.shape[0]


def symmetric_kl(a: Tensor, b: Tensor, log_a: Tensor | None = None) -> Tensor:
    """KL(sg(b) || a) + KL(sg(a) || b) between logit tensors, averaged over rows, each side detaching the
    other (the official ALUM/SMART loss); the same value and gradients as `kl(b.detach(), a) + kl(a.detach(), b)`.
    `log_a`, a's log-probabilities when they were computed already (for the task loss), saves a log-softmax."""
    ra, rb = _rows(a), _rows(b)
    if ra.shape[0] == 0:
        return a.sum() * 0 + b.sum() * 0
    cached = None if log_a is None else _rows(log_a).detach()
    return _SymmetricKL.apply(ra, rb, cached) / ra.shape[0]


def kl_log(log_p: Tensor, log_q: Tensor, reduction: str = "mean") -> Tensor:
    """KL(p || q) from float32 log-probabilities (rows over the last dim), averaged (or summed) over rows."""
    if log_p.numel() == 0:
        return log_p.sum() * 0 + log_q.sum() * 0
    per_row = (log_p.exp() * (log_p - log_q)).sum(-1)
    return per_row.sum() if reduction == "sum" else per_row.mean()


def mse(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    a, b = f32(a), f32(b)
    if a.numel() == 0:
        return a.sum() * 0 + b.sum() * 0
    squared = (a - b).pow(2)
    return squared.sum() if reduction == "sum" else squared.mean()


def norm(x: Tensor, p: Norm, level: Level) -> Tensor:
    """Norm of `x` (B, T, D), kept as a broadcastable tensor: (B, T, 1) per token, (B, 1, 1) per example."""
    x = f32(x)
    dims = (-1,) if level == "token" else (-2, -1)
    if p == "l2":
        return x.pow(2).sum(dim=dims, keepdim=True).sqrt()
    if p == "linf":
        return x.abs().amax(dim=dims, keepdim=True)
    raise ValueError(f"unknown norm {p!r} (l2 or linf)")


def normalize(x: Tensor, p: Norm, level: Level, guard: float = GUARD) -> Tensor:
    """x / (||x|| + guard): unit norm wherever x is not zero."""
    return x / (norm(x, p, level) + guard)


def project(x: Tensor, eps: float, p: Norm, level: Level) -> Tensor:
    """The closest point to `x` inside the eps-ball of norm `p` (per token or per example)."""
    if p == "linf":
        return x.clamp(-eps, eps)  # the l-inf ball is a box, the same per token or per example
    scale = (eps / norm(x, p, level).clamp_min(1e-12)).clamp(max=1.0)
    return x * scale


Constraint = Literal["gradient", "normalize", "project"]


def ascent_step(
    delta: Tensor,
    grad: Tensor,
    step_size: float,
    *,
    constraint: Constraint,
    p: Norm,
    level: Level,
    eps: float,
    sign: bool = False,
) -> Tensor:
    """One ascent step on delta, under one of three update rules (named by what each reproduces):

    `gradient` (the code released with the ALUM and SMART papers, mt-dnn 4b92661 and 0d6201e):
        delta <- step_size * g / (||g|| + 1e-6); the random start only decides where g is taken.
    `normalize` (mt-dnn master after the papers, cceaa00 and f0b40b6):
        delta <- (delta + step_size * g) / (||delta + step_size * g|| + 1e-6): unit norm, whatever eps is.
    `project` (the papers' formulas, ALUM Algorithm 1 line 6; Madry et al. for PGD):
        delta <- Proj_eps(delta + step_size * g / ||g||), eps a radius. With `sign`, an l-inf step moves
        by sign(g), the steepest-ascent direction of the l-inf ball (Madry's PGD) instead of g / ||g||_inf.
    """
    grad = f32(grad)
    if constraint == "gradient":
        return step_size * normalize(grad, p, level)
    if constraint == "normalize":
        return normalize(f32(delta) + step_size * grad, p, level)
    if constraint == "project":
        direction = grad.sign() if sign and p == "linf" else normalize(grad, p, level, guard=1e-12)
        return project(f32(delta) + step_size * direction, eps, p, level)
    raise ValueError(f"unknown constraint {constraint!r} (gradient, normalize or project)")


def uniform_in_ball(shape: torch.Size, eps: float, p: Norm, level: Level, mask: Tensor,
                    generator: torch.Generator | None = None) -> Tensor:
    """A point drawn uniformly from the eps-ball of norm `p` (per token or per example), zero at padding.

    l-inf: each coordinate uniform in [-eps, eps]. l2: a uniform direction times eps * U^(1/n), n the
    number of free coordinates of the ball (so the radius is distributed as in the ball, not on its shell)."""
    device = mask.device
    if p == "linf":
        return (torch.rand(shape, device=device, generator=generator) * 2 - 1) * eps * mask
    direction = normalize(torch.randn(shape, device=device, generator=generator) * mask, "l2", level, guard=1e-12)
    n = shape[-1] * (mask.sum(dim=(-2, -1), keepdim=True) if level == "example" else torch.ones_like(mask))
    u = torch.rand(n.shape, device=device, generator=generator)
    return direction * eps * u.pow(1.0 / n.clamp_min(1))


def token_mask(mask: Tensor | None, shape: torch.Size, device: torch.device) -> Tensor:
    """(B, T, 1) float mask of real tokens, from an attention mask (all ones when there is none)."""
    if mask is None:
        return torch.ones(*shape[:2], 1, device=device)
    return mask.to(device=device, dtype=torch.float32).unsqueeze(-1)


def mean_token_norm(delta: Tensor, mask: Tensor) -> float:
    """Mean L2 norm of delta over real tokens: the `delta_norm` every method reports."""
    norms = norm(delta, "l2", "token") * mask
    return float(norms.sum() / mask.sum().clamp_min(1))


def effective_stats(effective: Tensor, delta: Tensor, mask: Tensor) -> tuple[float, float, float]:
    """How much of delta reached the model (`effective`: the change it made, `EmbeddingPerturbation.effective`):
    the mean L2 norm per real token of that change, the share of real tokens it left exactly unchanged, and
    its cosine to delta over the real tokens (0 when nothing changed, delta zero included). One device sync."""
    effective, delta = f32(effective) * mask, f32(delta) * mask
    real = mask.sum().clamp_min(1)
    token_norms = norm(effective, "l2", "token")
    unchanged = ((token_norms == 0).float() * mask).sum()
    cosine = (effective * delta).sum() / (effective.norm() * delta.norm()).clamp_min(1e-30)
    mean_norm, share, cosine = torch.stack([token_norms.sum() / real, unchanged / real, cosine]).tolist()
    return mean_norm, share, cosine
