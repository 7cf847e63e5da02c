"""The plain-torch side of the math tests in tests/unit/adversarial/ (test_gradient.py, test_multipass.py): delta
added by a forward hook of its own on the word-embedding output, gradients with plain autograd, norms and
projections written out. Nothing here uses alum.adversarial's math (functional, dropout; ForwardOutput is
only the container a forward returns), so the methods are checked against an independent computation.

The comparisons run in float64 (`float64()`: a float64 model, and delta, its random start and every
intermediate in float64), so that the method and the reference differ only by float64 rounding, and the
tolerance follows from the arithmetic (`FLOAT64_TRAJECTORY`), not from one CPU's rounding."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from alum.adversarial.target import ForwardOutput

# How far a float64 method's result may be from the float64 reference's, relative to the largest coordinate
# of the reference's result. The two evaluate the same formulas with the same model, so they differ only in
# the order of a few float64 roundings (a norm by x.norm() or by x.pow(2).sum().sqrt(), a sum in another
# order), each of relative size at most u = 2^-53 = 1.1e-16, and in how those differences propagate:
#   OPS = 3e3: the longest chain of roundings in one step. The forward of the tiny BERT (hidden 32, one
#     layer) is ~500 deep (every matmul a dot product of <= 64 terms: Q, K, V, the 9-token attention,
#     the output, FFN 32 -> 64 -> 32, the pooler, the classifier; three LayerNorms over 32; softmax,
#     GELU, tanh, cross-entropy), its backward about twice that (~1000), and the step's direction and
#     projection take two l2 norms over at most 9 tokens x 32 = 288 coordinates (~600): ~2.1e3.
#   STEPS = 8: the longest trajectory compared, YOPO-2-3's 2 full passes and 6 ascent steps (PGD: 3).
#   CONDITION = 1e4: a per-token direction g_t / ||g_t|| divides the gradient's rounding error (of the
#     size of the largest gradients) by the token's own gradient norm; the smallest on these trajectories
#     is 1.2e-5 against 4.4e-2 for the largest (3.8e3). A parameter gradient's element is likewise a sum
#     whose terms may be larger than its result (compared at the scale of all of them: `largest`).
#   GROWTH = 3: an error in delta after one step moves the end of the trajectory by at most 2.6x
#     (measured by perturbing delta by 1e-12 after PGD's first step and at YOPO's start).
# u * OPS * STEPS * CONDITION * GROWTH = 1.1e-16 * 3e3 * 8 * 1e4 * 3 = 8e-8. Measured: at most 2.3e-15
# (20 ulps), the same on 1 to 4 threads and with ATen's and MKL's vector kernels off (ATEN_CPU_CAPABILITY=
# default, MKL_ENABLE_INSTRUCTIONS=SSE4_2). A 1% change of a step size moves delta by ~1e-3 of its size.
FLOAT64_TRAJECTORY = 2.0**-53 * 3e3 * 8 * 1e4 * 3

# The methods' guard against a zero norm (functional.normalize(..., guard=1e-12)): g / (||g|| + 1e-12).
# Written into the reference so that it is not a difference between the two: at a token whose gradient
# norm is 1.2e-5 it moves the direction by 8e-8 of its size, more than float64 rounding (and about one
# float32 ulp).
GUARD = 1e-12


@contextlib.contextmanager
def float64():
    """Tensors made without a dtype (delta, its random start, the reference's) are float64 inside."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def assert_float64_close(got, want, scale=None, msg=None):
    """got == want up to FLOAT64_TRAJECTORY of `scale`, by default want's largest coordinate; both must be
    float64 (the bound is float64's), which also guards against a silent float32 run.

    Give `scale` where want's own size is not the size of what was summed to make it: a parameter gradient
    that is zero in exact arithmetic (a key bias: softmax ignores a shift common to a query's scores) is
    rounding noise of the size of the other gradients' rounding, whatever its own size."""
    assert got.dtype == want.dtype == torch.float64, (got.dtype, want.dtype)
    scale = float(want.abs().max()) if scale is None else scale
    torch.testing.assert_close(got, want, rtol=0, atol=FLOAT64_TRAJECTORY * scale, msg=msg)


def largest(tensors) -> float:
    """The largest coordinate over several tensors: the scale of a model's parameter gradients together."""
    return max(float(t.detach().abs().max()) for t in tensors)


def wide(logits):
    """Logits for the loss in float32, or float64 when they are (a float32 cast would add float32 rounding)."""
    return logits if logits.dtype == torch.float64 else logits.float()


def wide_forward(model, batch) -> ForwardOutput:
    """support.models.classification_forward, with the loss in float64 for a float64 model."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return ForwardOutput(logits, F.cross_entropy(wide(logits), batch["labels"]))


@contextlib.contextmanager
def added_to_words(model, delta):
    handle = model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out + delta)
    try:
        yield
    finally:
        handle.remove()


def task_loss(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(wide(logits), batch["labels"])


def ce_and_grad(model, batch, delta, attention=True):
    """The cross-entropy at x + delta and its gradient w.r.t. delta (attention=False: padding attended)."""
    d = delta.detach().clone().requires_grad_()
    kwargs = {"input_ids": batch["input_ids"]}
    if attention:
        kwargs["attention_mask"] = batch["attention_mask"]
    with added_to_words(model, d):
        loss = F.cross_entropy(wide(model(**kwargs).logits), batch["labels"])
    (grad,) = torch.autograd.grad(loss, d)
    return loss.detach(), grad


def real_tokens(batch):
    return batch["attention_mask"].float().unsqueeze(-1)


def l2(x, level):
    """Per-example (B, 1, 1) or per-token (B, T, 1) Euclidean norm."""
    if level == "token":
        return x.norm(dim=-1, keepdim=True)
    return x.flatten(1).norm(dim=1).view(-1, 1, 1)


def unit(g, level):
    return g / (l2(g, level) + GUARD)  # a zero gradient (padding) stays zero


def onto_ball(x, eps, norm, level):
    """Euclidean projection onto the eps-ball (rescale if outside; the l-inf ball is a box: clamp)."""
    if norm == "linf":
        return x.clamp(-eps, eps)
    return x * torch.clamp(eps / l2(x, level), max=1.0)


def mean_token_norm(g, mask):
    return float((g.norm(dim=-1, keepdim=True) * mask).sum() / mask.sum())


def unmasked_forward(model, batch) -> ForwardOutput:
    """Attends to padding too, so delta's gradient at padding is not zero: only the method's own masking
    can then keep delta at zero there (with the attention mask the gradient vanishes there by itself)."""
    logits = model(input_ids=batch["input_ids"]).logits
    return ForwardOutput(logits, F.cross_entropy(wide(logits), batch["labels"]))


def reference_uniform_in_ball(shape, eps, norm, level, mask):
    """The draws of a uniform point in the ball, in the library's order: linf, one U(-eps, eps) per coordinate;
    l2, a Gaussian direction (masked, normalised) then a radius eps * U^(1/n), n the free coordinates."""
    if norm == "linf":
        return (torch.rand(shape) * 2 - 1) * eps * mask
    direction = torch.randn(shape) * mask
    direction = unit(direction, level)
    if level == "token":
        n = torch.full((shape[0], shape[1], 1), float(shape[-1]))
    else:
        n = shape[-1] * mask.sum(dim=(1, 2), keepdim=True)
    u = torch.rand(n.shape)
    return direction * eps * u.pow(1.0 / n)
