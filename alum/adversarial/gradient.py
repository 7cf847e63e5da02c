"""Supervised single-pass methods: the clean task loss plus the task loss at an adversarial delta.

The clean forward runs with delta = 0 attached, so the first ascent gradient comes from the clean
pass itself (autograd.grad with retain_graph) and costs no extra forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from alum.adversarial import functional as AF
from alum.adversarial.ascent import Rule
from alum.adversarial.base import CleanPass, Method, SinglePass, StepReport, Trainer
from alum.adversarial.registry import register
from alum.adversarial.target import Target


@register
class NoAdversary(Method):
    """Plain training: the task loss, one forward, one backward."""

    name = "none"
    summary = "no adversarial term (the baseline)"
    perturbs = False

    @dataclass
    class Config:
        pass

    def loss(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> tuple[Tensor, StepReport]:
        out = self.clean_forward(target, batch)
        return out.loss, StepReport(loss=float(out.loss.detach()))


class _Attack(SinglePass):
    """FGSM, FGM and PGD: climb the task loss from delta = 0 attached to the clean pass (or from a
    `random_start`); the adversarial term is the task loss where the climb ends."""

    climbs_from_clean = True
    steps = 1

    def update(self, delta: Tensor, grad: Tensor) -> Tensor:
        raise NotImplementedError

    def random_start(self, target: Target, batch: dict[str, Tensor], mask: Tensor) -> Tensor:
        raise NotImplementedError

    def adversarial_term(self, target: Target, batch: dict[str, Tensor], clean: CleanPass, trainer: Trainer):
        if clean.zero is not None:
            start, first = clean.zero, clean.out.loss
        else:
            start, first = self.random_start(target, batch, clean.mask), None
        climbed = self.climb(start, lambda delta: self.perturbed(target, batch, delta).loss, self.update, clean.mask,
                             trainer, self.steps, first)
        if climbed.grad is None:
            return None
        return self.perturbed(target, batch, climbed.delta).loss, climbed.delta, climbed.grad


@register
class FGSM(_Attack):
    name = "fgsm"
    size_options = ("eps",)
    summary = "fast gradient sign: delta = eps * sign(g), one step (Goodfellow et al. 2015)"

    @dataclass
    class Config:
        eps: float = 0.01  # per-coordinate size of the step (an l-inf radius)
        weight: float = 1.0  # weight of the adversarial task loss

    def update(self, delta: Tensor, grad: Tensor) -> Tensor:
        return self.config.eps * grad.sign()


@register
class FGM(_Attack):
    name = "fgm"
    size_options = ("eps",)
    summary = "fast gradient method: delta = eps * g / ||g||_2 per example (Miyato et al. 2017)"

    @dataclass
    class Config:
        eps: float = 1.0  # L2 radius of delta per example
        weight: float = 1.0
        level: Literal["example", "token"] = "example"

    def update(self, delta: Tensor, grad: Tensor) -> Tensor:
        return self.config.eps * AF.normalize(grad, "l2", self.config.level, guard=1e-12)


@register
class PGD(_Attack):
    name = "pgd"
    size_options = ("step_size", "eps")
    summary = "projected gradient descent: K normalised steps, projected to the eps-ball (Madry et al. 2018)"

    @dataclass
    class Config:
        steps: int = 3
        step_size: float = 0.3
        eps: float = 1.0
        norm: Literal["l2", "linf"] = "l2"  # linf steps by sign(g), as Madry et al.
        level: Literal["example", "token"] = "example"
        random_init: bool = False  # start from a point drawn uniformly from the eps-ball instead of 0
        weight: float = 1.0

        def validate(self) -> None:
            if self.steps < 1:
                raise ValueError("steps must be at least 1")

    @property
    def steps(self) -> int:
        return self.config.steps

    @property
    def climbs_from_clean(self) -> bool:
        return not self.config.random_init

    def update(self, delta: Tensor, grad: Tensor) -> Tensor:
        c = self.config
        return Rule(c.step_size, "project", c.norm, c.level, c.eps, sign=True)(delta, grad)

    def random_start(self, target: Target, batch: dict[str, Tensor], mask: Tensor) -> Tensor:
        c = self.config
        return AF.uniform_in_ball(self.delta_shape(target, batch), c.eps, c.norm, c.level, mask)
