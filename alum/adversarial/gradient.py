"""Supervised single-pass methods: the clean task loss plus the task loss at an adversarial delta.

The clean forward runs with delta = 0 attached, so the first ascent gradient comes from the clean
pass itself (autograd.grad with retain_graph) and costs no extra forward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from alum.adversarial import functional as AF
from alum.adversarial.base import Method, StepReport, Trainer, register
from alum.adversarial.target import Target


@register
class NoAdversary(Method):
    """Plain training: the task loss, one forward, one backward."""

    name = "none"
    summary = "no adversarial term (the baseline)"

    @dataclass
    class Config:
        pass

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        out = self.clean_forward(target, batch)
        trainer.backward(out.loss)
        return StepReport(loss=float(out.loss.detach()))


class _OneStepAttack(Method):
    """Shared by FGSM and FGM: one gradient at delta = 0, one step, one adversarial pass."""

    def direction(self, grad: Tensor) -> Tensor:
        raise NotImplementedError

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        zero = self.zeros(target, batch)
        mask = self.mask_of(batch, zero.shape, zero.device)
        clean = self.clean_forward(target, batch, zero)
        started = time.perf_counter()
        grad = self.ascent_grad(clean.loss, zero, retain_graph=True)
        if grad is None:
            trainer.backward(clean.loss)
            return self.report(clean.loss, None, None, None, mask, started, skipped=True)
        delta = self.config.eps * self.direction(grad) * mask
        adv = self.perturbed(target, batch, delta)
        trainer.backward(clean.loss + self.config.weight * adv.loss)
        return self.report(clean.loss, adv.loss, delta, grad, mask, started)


@register
class FGSM(_OneStepAttack):
    name = "fgsm"
    summary = "fast gradient sign: delta = eps * sign(g), one step (Goodfellow et al. 2015)"

    @dataclass
    class Config:
        eps: float = 0.01  # per-coordinate size of the step (an l-inf radius)
        weight: float = 1.0  # weight of the adversarial task loss

    def direction(self, grad: Tensor) -> Tensor:
        return grad.sign()


@register
class FGM(_OneStepAttack):
    name = "fgm"
    summary = "fast gradient method: delta = eps * g / ||g||_2 per example (Miyato et al. 2017)"

    @dataclass
    class Config:
        eps: float = 1.0  # L2 radius of delta per example
        weight: float = 1.0
        level: Literal["example", "token"] = "example"

    def direction(self, grad: Tensor) -> Tensor:
        return AF.normalize(grad, "l2", self.config.level, guard=1e-12)


@register
class PGD(Method):
    name = "pgd"
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

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        c = self.config
        zero = self.zeros(target, batch)
        mask = self.mask_of(batch, zero.shape, zero.device)
        if c.random_init:
            clean = self.clean_forward(target, batch)
            delta = AF.uniform_in_ball(zero.shape, c.eps, c.norm, c.level, mask)
        else:
            clean = self.clean_forward(target, batch, zero)
            delta = zero
        started = time.perf_counter()
        grad = None
        for k in range(c.steps):
            if k == 0 and not c.random_init:
                grad = self.ascent_grad(clean.loss, zero, retain_graph=True)
            else:
                delta = delta.detach().requires_grad_()
                grad = self.ascent_grad(self.perturbed(target, batch, delta).loss, delta)
            if grad is None:
                trainer.backward(clean.loss)
                return self.report(clean.loss, None, None, None, mask, started, skipped=True)
            delta = AF.ascent_step(
                delta.detach(), grad, c.step_size, constraint="project", p=c.norm, level=c.level, eps=c.eps, sign=True
            ) * mask
        adv = self.perturbed(target, batch, delta)
        trainer.backward(clean.loss + c.weight * adv.loss)
        return self.report(clean.loss, adv.loss, delta, grad, mask, started)
