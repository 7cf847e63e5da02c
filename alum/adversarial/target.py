"""What a method perturbs: a model, how to run it on a batch, and where delta enters (the embeddings)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn


class ForwardOutput(NamedTuple):
    """What a stage's forward returns. `logits` are the outputs a divergence compares: (B, C) for a
    sequence task, (N, V) at the N masked positions for masked LM. `loss` is the task loss when the
    batch has labels."""

    logits: Tensor
    loss: Tensor | None


ForwardFn = Callable[[nn.Module, dict[str, Tensor]], ForwardOutput]


class EmbeddingPerturbation:
    """Adds delta to the output of the model's input-embedding module, through a forward hook.

    The hook works for every HF encoder family and never edits weights (which would do nothing under
    ZeRO), and delta enters before positions and LayerNorm are added, exactly once.
    """

    def __init__(self, model: nn.Module):
        self.embedding = model.get_input_embeddings()
        if not isinstance(self.embedding, nn.Embedding):
            raise TypeError(f"expected nn.Embedding input embeddings, got {type(self.embedding).__name__}")
        self.block = _owner_of(model, self.embedding)

    def shape(self, input_ids: Tensor) -> torch.Size:
        return torch.Size((*input_ids.shape, self.embedding.embedding_dim))

    @contextlib.contextmanager
    def applied(self, delta: Tensor) -> Iterator[None]:
        def add_delta(_module, _inputs, output):
            return output + delta.to(output.dtype)

        handle = self.embedding.register_forward_hook(add_delta)
        try:
            yield
        finally:
            handle.remove()


def _owner_of(model: nn.Module, child: nn.Module) -> nn.Module:
    """The module holding `child` directly: the embedding block (words + positions + LayerNorm)."""
    for module in model.modules():
        if any(c is child for c in module.children()):
            return module
    return child


@dataclass
class Target:
    """A model plus the stage's forward function. Methods call `target(batch)`; SMART's teacher calls
    `target.forward(teacher, batch)` to run the same computation on another copy of the weights."""

    model: nn.Module
    forward: ForwardFn
    divergence: str = "kl"  # "kl" for classification and MLM logits, "mse" for regression outputs
    perturbation: EmbeddingPerturbation = field(init=False)

    def __post_init__(self) -> None:
        self.perturbation = EmbeddingPerturbation(self.model)

    def __call__(self, batch: dict[str, Any]) -> ForwardOutput:
        return self.forward(self.model, batch)
