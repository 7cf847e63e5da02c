"""The interface every method implements, the report it returns, and the registry of methods by name."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from alum.adversarial import functional as AF
from alum.adversarial.target import ForwardOutput, Target
from alum.errors import UserError


class Trainer(Protocol):
    """What the training loop lends a method. The loop owns *how* backward and the optimizer step happen
    (plain autograd, a GradScaler, a DeepSpeed engine); the method decides how often."""

    def backward(self, loss: Tensor) -> None: ...

    def optimizer_step(self) -> None: ...


@dataclass
class StepReport:
    """What one micro-batch did. `loss` is the clean task loss (None without labels)."""

    loss: float | None
    adv_loss: float | None = None
    delta_norm: float | None = None  # mean L2 norm of delta per real token
    grad_norm: float | None = None  # mean L2 norm of the ascent gradient per real token
    skipped: int = 0  # adversarial terms dropped for a non-finite ascent gradient
    adv_seconds: float = 0.0  # wall time spent on the adversarial part (ascent and adversarial passes)


class Method:
    """Base class. A subclass sets `name`, `Config`, `needs_labels`, and implements `step`.

    `step` runs everything for one micro-batch: forwards, ascent on delta (gradients w.r.t. delta only,
    never touching a parameter's .grad), and `trainer.backward` on the final loss: exactly once for
    single-pass methods, `backward_passes` times for the methods that accumulate over several passes.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    needs_labels: ClassVar[bool] = True
    summary: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self.skipped_total = 0
        self.last_delta: Tensor | None = None  # the final perturbation of the last step, for inspection
        # Under fp16 loss scaling the ascent loss is scaled by this before autograd.grad and the result
        # unscaled, so small gradients do not underflow; the loop sets it to the engine's loss scale.
        self.grad_scale: Callable[[], float] = lambda: 1.0

    # Passes and optimizer steps per micro-batch, for the loop's bookkeeping.
    @property
    def backward_passes(self) -> int:
        return 1

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps the method takes itself per batch (FreeAT); 0 means the loop steps once."""
        return 0

    def refusal(self, grad_accum: int, zero_stage: int) -> str | None:
        """Why the method cannot train under this engine set-up, or None: every stage and the Trainer drop-in
        ask here before any work. By default a method that steps the optimizer itself needs grad_accum 1."""
        if self.optimizer_steps and grad_accum != 1:
            return (f"engine.grad_accum: {self.name} takes an optimizer step on every replay of a batch, so it "
                    f"needs 1 (got {grad_accum})")
        return None

    def setup(self, target: Target, total_updates: int) -> None:
        """Called once before training, with the number of optimizer updates the run will make."""

    def on_optimizer_step(self, target: Target, update: int) -> None:
        """Called by the loop after every optimizer step (`update` counts from 1)."""

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped_total = state["skipped_total"]

    # Helpers shared by the methods.

    @property
    def site(self) -> str:
        """Where delta enters (see EmbeddingPerturbation): a method's `site` option, else the word embeddings."""
        return getattr(self.config, "site", "words")

    def delta_shape(self, target: Target, batch: dict[str, Tensor]) -> torch.Size:
        return target.perturbation.shape(batch["input_ids"], self.site)

    def clean_forward(self, target: Target, batch: dict[str, Tensor], delta: Tensor | None = None) -> ForwardOutput:
        if delta is None:
            out = target(batch)
        else:
            with target.perturbation.applied(delta, self.site):
                out = target(batch)
        if self.needs_labels and out.loss is None:
            raise UserError(f"method '{self.name}' needs labels, but the batch has none")
        return out

    def perturbed(self, target: Target, batch: dict[str, Tensor], delta: Tensor) -> ForwardOutput:
        with target.perturbation.applied(delta, self.site):
            return target(batch)

    def ascent_grad(self, objective: Tensor, delta: Tensor, retain_graph: bool = False) -> Tensor | None:
        """d objective / d delta, touching no parameter's .grad; None (and counted) if not finite."""
        scale = float(self.grad_scale())
        (grad,) = torch.autograd.grad(objective * scale, delta, retain_graph=retain_graph)
        return self.checked(AF.f32(grad) / scale)

    def checked(self, grad: Tensor | None) -> Tensor | None:
        if grad is None or not torch.isfinite(grad).all():
            self.skipped_total += 1
            return None
        return grad

    @staticmethod
    def mask_of(batch: dict[str, Tensor], delta_shape: torch.Size, device: torch.device) -> Tensor:
        return AF.token_mask(batch.get("attention_mask"), delta_shape, device)

    def zeros(self, target: Target, batch: dict[str, Tensor]) -> Tensor:
        ids = batch["input_ids"]
        return torch.zeros(target.perturbation.shape(ids, self.site), device=ids.device, requires_grad=True)

    def report(
        self,
        loss: Tensor | None,
        adv_loss: Tensor | None,
        delta: Tensor | None,
        grad: Tensor | None,
        mask: Tensor,
        started: float,
        skipped: bool = False,
    ) -> StepReport:
        if delta is not None:
            self.last_delta = delta.detach()
        return StepReport(
            loss=None if loss is None else float(loss.detach()),
            adv_loss=None if adv_loss is None else float(adv_loss.detach()),
            delta_norm=None if delta is None else AF.mean_token_norm(delta.detach(), mask),
            grad_norm=None if grad is None else AF.mean_token_norm(grad, mask),
            skipped=int(skipped),
            adv_seconds=elapsed(started, mask.device),
        )


def elapsed(started: float, device: torch.device) -> float:
    """Seconds since `started`; waits for queued GPU work first, or the figure means nothing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def build_method(name: str, options: dict[str, Any] | None = None, source: str = "config",
                 prefix: str | None = None) -> Method:
    """The method `name`, configured from `options` (checked against its Config: an unknown key fails,
    named as `prefix` + key)."""
    from alum.config import from_dict

    if name not in METHODS:
        raise UserError(f"{source}: unknown method '{name}' (known: {', '.join(METHODS)})")
    cls = METHODS[name]
    prefix = f"{name}." if prefix is None else prefix
    if options and not dataclasses.fields(cls.Config):
        raise UserError(f"{source}: {prefix.rstrip('.')}: method '{name}' takes no options, but {sorted(options)} "
                        "are set")
    return cls(from_dict(cls.Config, options or {}, source=source, prefix=prefix))


def build_methods(names: list[str], options: dict[str, Any], source: str = "config",
                  grad_accum: int = 1, zero_stage: int = 0) -> dict[str, Method]:
    """The methods `names` from `adversarial.options`, a mapping from method name to that method's options,
    the same in every stage. Every entry is checked, used or not (a typo in a preset fails before any work),
    and every method named is asked whether it can run under this engine set-up."""
    if not isinstance(options, dict):
        raise UserError(f"{source}: adversarial.options: expects a mapping of method names to their options")
    for name, entry in options.items():
        if name not in METHODS:
            raise UserError(f"{source}: adversarial.options.{name}: unknown method (known: {', '.join(METHODS)})")
        if entry is not None and not isinstance(entry, dict):
            raise UserError(f"{source}: adversarial.options.{name}: expects a mapping of option names to values")
        build_method(name, entry, source, prefix=f"adversarial.options.{name}.")
    methods = {}
    for name in names:
        method = methods[name] = build_method(name, options.get(name), source, prefix=f"adversarial.options.{name}.")
        why = method.refusal(grad_accum, zero_stage)
        if why:
            raise UserError(f"{source}: {why}")
    return methods


def method_defaults(name: str) -> dict[str, Any]:
    return dataclasses.asdict(METHODS[name].Config())
