"""What a method perturbs: a model, how to run it on a batch, and where delta enters (the embeddings)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from alum.adversarial import functional as AF
from alum.adversarial.divergence import Divergence, as_divergence


class ForwardOutput:
    """What a stage's forward returns. `logits` are the outputs a divergence compares: (B, C) for a
    sequence task, (N, V) at the N masked positions for masked LM. `loss` is the task loss when the batch
    has labels: given, or computed from `loss_fn(self)` on first use, so passes whose loss nobody reads
    (the adversarial passes of label-free methods) never pay for it. `log_probs` (float32) is computed at
    most once and shared by the task loss and every divergence of the pass."""

    __slots__ = ("logits", "_loss", "_loss_fn", "_log_probs")

    def __init__(self, logits: Tensor, loss: Tensor | None = None, loss_fn: Callable[[ForwardOutput], Tensor] | None = None):
        self.logits, self._loss, self._loss_fn, self._log_probs = logits, loss, loss_fn, None

    @property
    def loss(self) -> Tensor | None:
        if self._loss is None and self._loss_fn is not None:
            self._loss = self._loss_fn(self)
        return self._loss

    @property
    def cached_log_probs(self) -> Tensor | None:
        """The log-probabilities if some earlier use computed them, else None (nothing is computed)."""
        return self._log_probs

    @property
    def log_probs(self) -> Tensor:
        if self._log_probs is None:
            self._log_probs = torch.log_softmax(AF.f32(self.logits), dim=-1)
        return self._log_probs


ForwardFn = Callable[[nn.Module, dict[str, Tensor]], ForwardOutput]


SITES = ("words", "embeddings")


class EmbeddingPerturbation:
    """Adds delta where a method asks, through a forward hook, at one of two sites:

    - "words": the output of the model's input-embedding module (the word embeddings), before positions and
      LayerNorm are added. FGM, PGD and FreeLB perturb here, as their reference code does.
    - "embeddings": the output of the embedding block (words + positions + token types, LayerNorm, dropout):
      what the official ALUM/SMART code perturbs. Its unit-norm delta is on the scale of these normalised
      activations, whereas raw word embeddings are often 10-50x smaller.

    A hook works for every HF encoder family and never edits weights (which would do nothing under ZeRO);
    delta enters exactly once.
    """

    def __init__(self, model: nn.Module):
        self._seen: dict[str, tuple[Tensor, torch.dtype]] = {}  # site -> its last output and the dtype it was used in
        self.embedding = model.get_input_embeddings()
        if not isinstance(self.embedding, nn.Embedding):
            raise TypeError(f"expected nn.Embedding input embeddings, got {type(self.embedding).__name__}")
        self.block = _owner_of(model, self.embedding)
        # the block ends in a LayerNorm in every family we know; its width is the block's output width
        norms = [m for m in self.block.modules() if isinstance(m, nn.LayerNorm)]
        self.block_dim = norms[-1].normalized_shape[-1] if norms else self.embedding.embedding_dim

    def module(self, site: str) -> nn.Module:
        """The module whose output delta is added to."""
        if site not in SITES:
            raise ValueError(f"unknown perturbation site {site!r} ({' or '.join(SITES)})")
        return self.embedding if site == "words" else self.block

    def shape(self, input_ids: Tensor, site: str = "words") -> torch.Size:
        dim = self.embedding.embedding_dim if self.module(site) is self.embedding else self.block_dim
        return torch.Size((*input_ids.shape, dim))

    @contextlib.contextmanager
    def applied(self, delta: Tensor, site: str = "words", detach: bool = False) -> Iterator[None]:
        """Add delta at `site` while the block runs. With `detach`, the site's output is cut from the graph
        first, as the released ALUM/SMART code does with its adversarial embedding: the pass's loss then
        trains the layers above the site and nothing below it."""

        def add(x: Tensor) -> Tensor:
            base = x.detach() if detach else x
            self._seen[site] = (base.detach(), compute_dtype(base))
            return base + delta.to(x.dtype)

        def add_delta(_module, _inputs, output):
            if isinstance(output, tuple):
                return (add(output[0]), *output[1:])
            return add(output)

        handle = self.module(site).register_forward_hook(add_delta)
        try:
            yield
        finally:
            handle.remove()

    def effective(self, delta: Tensor, site: str = "words") -> Tensor | None:
        """The change `delta` makes to the site's output as the next layer receives it, in float32 (float64 for a
        float64 model): delta after the rounding of the addition, and of autocast's cast to its half precision.
        Measured against the site's output in the last pass that perturbed it; None before any.

        A delta below the resolution of the activations it is added to changes nothing: in bfloat16 (8
        significant bits) a coordinate of size 0.3 moves only in steps of 2^-9, and an addition of less than half
        a step rounds back to the same number."""
        seen = self._seen.get(site)
        if seen is None or seen[0].shape != delta.shape:
            return None
        x, dtype = seen
        wide = torch.float64 if dtype == torch.float64 else torch.float32
        moved = (x + delta.detach().to(x.dtype)).to(dtype)
        return moved.to(wide) - x.to(dtype).to(wide)

    def seen_dtype(self, site: str) -> torch.dtype | None:
        """The dtype the site's output was last used in (see `compute_dtype`)."""
        return self._seen[site][1] if site in self._seen else None

    def forget(self) -> None:
        """Drop the site outputs kept for `effective` (they hold activation memory until the next pass)."""
        self._seen.clear()


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype the layer after the site computes with `x` in: autocast's lower precision when autocast is on
    and `x` is wider (HF blocks end in a LayerNorm, which autocast keeps in float32; the next matmul casts
    down), else x's own."""
    kind = x.device.type
    if x.dtype == torch.float32 and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


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
    # "kl" for classification and MLM logits, "mse" for regression outputs, or any Divergence
    divergence: Divergence | str = "kl"
    perturbation: EmbeddingPerturbation = field(init=False)

    def __post_init__(self) -> None:
        self.divergence = as_divergence(self.divergence)
        self.perturbation = EmbeddingPerturbation(self.model)

    def __call__(self, batch: dict[str, Any]) -> ForwardOutput:
        return self.forward(self.model, batch)
