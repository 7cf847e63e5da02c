"""The plain-torch side of the math tests in tests/unit/adversarial/ (test_gradient.py, test_multipass.py): delta
added by a forward hook of its own on the word-embedding output, gradients with plain autograd, norms and
projections written out. Nothing here uses alum.adversarial's math (functional, dropout; ForwardOutput is
only the container a forward returns), so the methods are checked against an independent computation."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from alum.adversarial.target import ForwardOutput

TIGHT = dict(rtol=1e-5, atol=1e-7)


@contextlib.contextmanager
def added_to_words(model, delta):
    handle = model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out + delta)
    try:
        yield
    finally:
        handle.remove()


def task_loss(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.float(), batch["labels"])


def ce_and_grad(model, batch, delta, attention=True):
    """The cross-entropy at x + delta and its gradient w.r.t. delta (attention=False: padding attended)."""
    d = delta.detach().clone().requires_grad_()
    kwargs = {"input_ids": batch["input_ids"]}
    if attention:
        kwargs["attention_mask"] = batch["attention_mask"]
    with added_to_words(model, d):
        loss = F.cross_entropy(model(**kwargs).logits.float(), batch["labels"])
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
    return g / l2(g, level).clamp_min(1e-30)  # a zero gradient (padding) stays zero


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
    return ForwardOutput(logits, F.cross_entropy(logits.float(), batch["labels"]))


def reference_uniform_in_ball(shape, eps, norm, level, mask):
    """The draws of a uniform point in the ball, in the library's order: linf, one U(-eps, eps) per coordinate;
    l2, a Gaussian direction (masked, normalised) then a radius eps * U^(1/n), n the free coordinates."""
    if norm == "linf":
        return (torch.rand(shape) * 2 - 1) * eps * mask
    direction = torch.randn(shape) * mask
    direction = direction / l2(direction, level).clamp_min(1e-30)
    if level == "token":
        n = torch.full((shape[0], shape[1], 1), float(shape[-1]))
    else:
        n = shape[-1] * mask.sum(dim=(1, 2), keepdim=True)
    u = torch.rand(n.shape)
    return direction * eps * u.pow(1.0 / n)
