"""The one ascent loop on delta, shared by every method that climbs (FGSM, FGM, PGD, VAT, ALUM, SMART, YOPO's
inner steps) and by the evaluation attack: K times, a forward at delta, an objective, its gradient w.r.t.
delta, an update, the mask. What differs between them is only where delta starts, what it climbs and how it
moves, so those are the arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from alum.adversarial import functional as AF

# (objective, delta, retain_graph) -> d objective / d delta in float32, or None when it is not finite
GradOf = Callable[[Tensor, Tensor, bool], "Tensor | None"]


def delta_grad(objective: Tensor, delta: Tensor, retain_graph: bool = False, scale: float = 1.0) -> Tensor | None:
    """d objective / d delta in float32, touching no parameter's .grad; None if not finite.

    Under fp16 loss scaling the objective is multiplied by the loop's loss `scale` first and the gradient
    divided by it, so small gradients do not underflow in the half-precision backward."""
    (grad,) = torch.autograd.grad(objective * scale, delta, retain_graph=retain_graph)
    grad = AF.f32(grad) / scale
    return grad if torch.isfinite(grad).all() else None


@dataclass(frozen=True)
class Rule:
    """`functional.ascent_step` with its settings fixed: how a method's delta moves after each gradient."""

    step_size: float
    constraint: AF.Constraint
    norm: AF.Norm
    level: AF.Level
    eps: float
    sign: bool = False

    def __call__(self, delta: Tensor, grad: Tensor) -> Tensor:
        return AF.ascent_step(delta, grad, self.step_size, constraint=self.constraint, p=self.norm,
                              level=self.level, eps=self.eps, sign=self.sign)


@dataclass
class Climbed:
    delta: Tensor  # the last point reached (detached): where a non-finite gradient stopped the climb, if one did
    grad: Tensor | None  # the last step's gradient; None when it was not finite


def climb(
    delta: Tensor,
    objective: Callable[[Tensor], Tensor],
    update: Callable[[Tensor, Tensor], Tensor],
    mask: Tensor,
    steps: int = 1,
    grad_of: GradOf = delta_grad,
    first: Tensor | None = None,
) -> Climbed:
    """`steps` ascent steps from `delta`: objective(delta) -> scalar, update(delta, grad) -> the next delta,
    which is then zeroed at padding by `mask`.

    `first`, when given, is the objective already built at the starting `delta` (a clean pass run with delta
    attached): its gradient is the first step's, taken with the graph kept for the loss that uses it, and
    costs no forward. The loop enables gradients itself, so an attack under `torch.no_grad()` still climbs."""
    grad = None
    with torch.enable_grad():
        for k in range(steps):
            if k == 0 and first is not None:
                grad = grad_of(first, delta, True)
            else:
                delta = delta.detach().requires_grad_()
                grad = grad_of(objective(delta), delta, False)
            if grad is None:
                break
            delta = update(delta.detach(), grad) * mask
    return Climbed(delta.detach(), grad)
