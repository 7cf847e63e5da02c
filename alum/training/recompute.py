"""Gradient checkpointing for any stage's model: each layer's activations are recomputed in the backward
instead of kept from the forward, so memory falls to about one layer's activations, for about one more
forward of time."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from alum.errors import UserError


def check_supported(model: nn.Module | type, where: str | Path, key: str = "train.gradient_checkpointing") -> None:
    """A model (or model class) whose family cannot checkpoint is refused in one line naming `where` (its
    directory) and `key`; callers check the class before any work, from the directory's config."""
    cls = model if isinstance(model, type) else type(model)
    if not getattr(cls, "supports_gradient_checkpointing", False):
        raise UserError(f"{where}: {cls.__name__} does not support gradient checkpointing "
                        f"(supports_gradient_checkpointing is False); set {key}=false")


def enable_gradient_checkpointing(model: nn.Module, where: str | Path, key: str = "train.gradient_checkpointing") -> None:
    """Turn on the HF model's own checkpointing (refused as `check_supported` says)."""
    check_supported(model, where, key)
    # Non-reentrant, not torch's reentrant variant. The adversarial methods take gradients with respect to
    # delta alone, `torch.autograd.grad(loss, inputs=delta)`, which reentrant checkpointing refuses outright
    # ("not compatible with .grad()"); and a reentrant segment whose tensor inputs do not require grad
    # (the detached embedding output of ALUM/SMART's released rule, before delta is added to it) would
    # give its weights no gradient at all. The non-reentrant one works through autograd's saved-tensor
    # hooks and stays correct for both. Dropout: the recomputation replays the forward's random state
    # (preserve_rng_state, on by default), so the masks are the forward's and the gradients those of the
    # pass that was run (tests/unit/training/test_recompute.py).
    kwargs = {"use_reentrant": False}
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers 5.25 renamed it
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
