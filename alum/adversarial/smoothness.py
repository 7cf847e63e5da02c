"""Label-free smoothness methods (VAT, ALUM, SMART): make the model's outputs at x + delta agree with
its outputs at x, where delta is found by ascent on that disagreement. They need no labels, so they
serve masked-LM pretraining as well as fine-tuning (where the task loss is added when labels exist)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from alum.adversarial import dropout
from alum.adversarial import functional as AF
from alum.adversarial.ascent import Rule
from alum.adversarial.base import CleanPass, SinglePass, StepReport, Trainer
from alum.adversarial.registry import register
from alum.adversarial.target import ForwardOutput, Target
from alum.adversarial.teacher import MomentumTeacher, check_student


class _LabelFree(SinglePass):
    needs_labels = False
    weight_option = "alpha"


@register
class VAT(_LabelFree):
    name = "vat"
    size_options = ("eps", "xi")
    summary = "virtual adversarial training: one power-iteration step from a random probe of size xi (Miyato et al. 2018)"

    @dataclass
    class Config:
        eps: float = 1.0  # L2 radius of the adversarial delta per example
        # Size of the random probe of the power iteration, per example. The finite difference it takes
        # must stand above float32/bf16 rounding of the logits: at 1e-6 the ascent gradient was zero or
        # pointed elsewhere (cosine 0.08-0.73 to float64); see tests/unit/adversarial/test_smoothness.py.
        xi: float = 1e-1
        alpha: float = 1.0  # weight of KL(sg(clean) || adv)

    @property
    def delta_is_zero(self) -> bool:
        return self.config.eps == 0  # the probe only finds the direction; eps sizes delta

    def adversarial_term(self, target: Target, batch: dict[str, Tensor], clean: CleanPass, trainer: Trainer):
        c, divergence = self.config, target.divergence
        noise = torch.randn(self.delta_shape(target, batch), device=clean.mask.device) * clean.mask
        probe = c.xi * AF.normalize(noise, "l2", "example", guard=1e-12)
        climbed = self.climb(
            probe,
            lambda d: divergence.moving_from_fixed(clean.out, self.perturbed(target, batch, d), reduction="sum"),
            lambda _probe, grad: c.eps * AF.normalize(grad, "l2", "example", guard=1e-12),  # one power iteration
            clean.mask, trainer,
        )
        if climbed.grad is None:
            return None
        adv = self.perturbed(target, batch, climbed.delta)
        return divergence.moving_from_fixed(clean.out, adv), climbed.delta, climbed.grad


@dataclass
class SmoothnessConfig:
    """The adversarial smoothness term shared by ALUM and SMART."""

    alpha: float = 10.0  # weight of symKL(clean, adv): 10 in the ALUM paper's pretraining, 1 for fine-tuning
    # The sizes are not the papers' (sigma = eps = 1e-5, eta = 1e-3): those are below the resolution of bf16
    # and fp16 activations at the embedding output, where they round away (and with shared dropout masks they
    # vanish in float32 too). These are the smallest of docs/decomposition.md's sweep at which delta reaches a
    # bf16 or fp16 model and points where float64's does; constraint=gradient sigma=1e-5 step_size=1e-3 is
    # the code released with the papers.
    sigma: float = 1e-2  # std of delta's Gaussian start, per coordinate
    step_size: float = 3e-2  # eta
    steps: int = 1  # K ascent steps
    norm: Literal["linf", "l2"] = "linf"
    level: Literal["token", "example"] = "token"
    # How delta is updated (functional.ascent_step; the README's "Three update rules"):
    #   gradient:  eta * g / ||g||, the code released with the papers (mt-dnn 4b92661, 0d6201e)
    #   normalize: (delta + eta g) / ||.||, mt-dnn master after the papers (cceaa00, f0b40b6); eps unused
    #   project:   Proj_eps(delta + eta g / ||g||), the papers' Algorithm 1; eps is the radius
    constraint: Literal["gradient", "normalize", "project"] = "project"
    eps: float = 3e-2
    # Cut the perturbed passes from the graph below the site, as mt-dnn's ALUM (4b92661, f0b40b6) and SMART up to
    # 0d6201e do (from cceaa00 on, and on master, SMART's adversarial pass reaches the embeddings): the
    # smoothness term then trains the layers above where delta enters, and nothing below.
    detach_embeddings: bool = True
    # Replay the clean pass's dropout masks in the ascent and adversarial passes, so that the term compares
    # x with x + delta and not two dropout draws. The released code draws new masks, where the term is mostly
    # the draws' disagreement (docs/update-rules.md); docs/decomposition.md measured both at these sizes.
    share_dropout: bool = True
    # embeddings: the embedding block's output, after LayerNorm (the official code, where a unit-norm delta
    # is on the activations' scale); words: the raw word embeddings, where it can drown the token.
    site: Literal["embeddings", "words"] = "embeddings"

    @property
    def delta_is_zero(self) -> bool:
        # a zero step leaves delta at zero under the released rule, and at its start under the others
        return self.step_size == 0 and (self.constraint == "gradient" or self.sigma == 0)

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        for key in ("alpha", "sigma", "step_size", "eps"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, not {getattr(self, key)}")
        # Both passes would then be the same computation: the term is exactly 0 and its pass is paid for nothing.
        if self.delta_is_zero and self.share_dropout and self.alpha > 0:
            raise ValueError("share_dropout=true with a delta that is exactly 0 (step_size 0, and sigma 0 or "
                             "constraint gradient) makes the perturbed pass the clean one and the term 0: set "
                             "share_dropout=false to compare two dropout draws, or alpha=0 to drop the term")


class _Smoothness(_LabelFree):
    size_options = ("step_size", "sigma")

    def perturbed(self, target: Target, batch: dict[str, Tensor], delta: Tensor,
                  masks: dropout.RandomState | None = None) -> ForwardOutput:
        """The pass at x + delta, cut below the site if so configured, replaying `masks` if given."""
        with dropout.replaying(masks), target.perturbation.applied(delta, self.site, self.config.detach_embeddings):
            return target(batch)

    @property
    def delta_is_zero(self) -> bool:
        return self.config.delta_is_zero

    def adversarial_term(self, target: Target, batch: dict[str, Tensor], clean: CleanPass, trainer: Trainer):
        """symD(clean, adv) at the delta of K ascent steps on KL(sg(clean) || adv) from a N(0, sigma^2) start."""
        c, divergence = self.config, target.divergence
        masks = clean.random_state if c.share_dropout else None
        if self.delta_is_zero:  # no ascent can move delta: none is paid for (and no random start drawn)
            zero = torch.zeros(self.delta_shape(target, batch), device=clean.mask.device)
            return divergence.symmetric(clean.out, self.perturbed(target, batch, zero, masks)), zero, None
        start = torch.randn(self.delta_shape(target, batch), device=clean.mask.device) * c.sigma * clean.mask
        climbed = self.climb(
            start,
            lambda delta: divergence.moving_from_fixed(clean.out, self.perturbed(target, batch, delta, masks)),
            Rule(c.step_size, c.constraint, c.norm, c.level, c.eps),
            clean.mask, trainer, c.steps,
        )
        if climbed.grad is None:
            return None
        adv = self.perturbed(target, batch, climbed.delta, masks)
        return divergence.symmetric(clean.out, adv), climbed.delta, climbed.grad


@register
class ALUM(_Smoothness):
    name = "alum"
    summary = "ALUM: task loss + alpha * symKL(clean, adv), delta by ascent on KL (Liu et al. 2020)"
    Config = SmoothnessConfig


@dataclass
class SmartConfig(SmoothnessConfig):
    alpha: float = 1.0  # lambda_s, the smoothness weight (the SMART paper tries 1, 3, 5)
    mu: float = 1.0  # weight of the Bregman proximal term symD(f(x; theta), f(x; teacher))
    beta: float = 0.99  # teacher momentum early on
    beta_late: float = 0.999  # teacher momentum after `beta_switch` of the updates
    beta_switch: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.mu < 0 or not all(0 <= b <= 1 for b in (self.beta, self.beta_late, self.beta_switch)):
            raise ValueError("mu must be >= 0 and beta, beta_late, beta_switch in [0, 1]")


@register
class SMART(_Smoothness):
    """The teacher is born at the method's first step, a copy of the model as it is then (in pretraining:
    at the switch, not at step 0), and its beta schedule counts the method's own updates from there.

    It runs in the student's mode under the clean pass's dropout masks, so the proximal term measures the
    distance between the two sets of weights only: it is exactly zero while they are equal, as the paper's
    D(f(x; theta), f(x; theta_t)) of a deterministic f is."""

    name = "smart"
    summary = "SMART: ALUM's smoothness term + mu * Bregman proximal term to an EMA momentum teacher (Jiang et al. 2020)"
    Config = SmartConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.teacher: MomentumTeacher | None = None
        self.student: torch.nn.Module | None = None
        self.total_updates = 1

    def refusal(self, grad_accum: int, zero_stage: int) -> str | None:
        if zero_stage == 3:
            return ("engine.deepspeed: smart cannot run under ZeRO stage 3 (its momentum teacher is a full copy of the model on "
                    "every process); use ZeRO stage 0, 1 or 2")
        return super().refusal(grad_accum, zero_stage)

    def setup(self, target: Target, total_updates: int) -> None:
        check_student(target.model)  # the Trainer drop-in's engine is known only here
        self.student, self.total_updates = target.model, total_updates

    def new_teacher(self) -> MomentumTeacher:
        c = self.config
        return MomentumTeacher(self.student, c.beta, c.beta_late, c.beta_switch, self.total_updates)

    def on_optimizer_step(self, target: Target, update: int) -> None:
        if self.teacher is not None:
            self.teacher.update(target.model)

    def loss(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> tuple[Tensor, StepReport]:
        if self.student is None:
            raise RuntimeError("SMART.setup(target, total_updates) must run before training")
        if self.teacher is None:
            self.teacher = self.new_teacher()
        return super().loss(target, batch, trainer)

    def extra_terms(self, target: Target, batch: dict[str, Tensor], clean: CleanPass) -> list[Tensor]:
        """mu times the Bregman proximal term: the distance of the clean outputs to the teacher's."""
        self.teacher.model.train(target.model.training)
        with torch.no_grad(), _autocast_like(target.model), dropout.replaying(clean.random_state):
            anchor = target.forward(self.teacher.model, batch)
        return [self.config.mu * target.divergence.symmetric_to_fixed(clean.out, anchor)]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "teacher": None if self.teacher is None else self.teacher.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("teacher") is None:
            self.teacher = None  # not born yet (a checkpoint before the switch, or the preflight undone)
            return
        self.teacher = self.teacher or self.new_teacher()
        self.teacher.load_state_dict(state["teacher"])


def _autocast_like(model: torch.nn.Module):
    """Run the float32 teacher in the student's reduced precision, when the student has one."""
    dtype = next(model.parameters()).dtype
    if dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(next(model.parameters()).device.type, dtype=dtype)
    return contextlib.nullcontext()
