"""Label-free smoothness methods (VAT, ALUM, SMART): make the model's outputs at x + delta agree with
its outputs at x, where delta is found by ascent on that disagreement. They need no labels, so they
serve masked-LM pretraining as well as fine-tuning (where the task loss is added when labels exist)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from alum.adversarial import functional as AF
from alum.adversarial.base import Method, StepReport, Trainer, register
from alum.adversarial.target import ForwardOutput, Target
from alum.adversarial import dropout
from alum.adversarial.teacher import MomentumTeacher, check_student


def _moving_from_fixed(kind: str, fixed: ForwardOutput, moving: ForwardOutput, reduction: str = "mean") -> Tensor:
    """D(sg(fixed) || moving): gradient reaches `moving` only. Also the ascent objective of ALUM and SMART,
    as their released code takes it: KL(clean || adv), averaged over rows (`batchmean`)."""
    if kind == "kl":
        return AF.kl_from_fixed(fixed.log_probs, moving.logits, reduction)
    return AF.mse(moving.logits, fixed.logits.detach(), reduction)


def _moving_to_fixed(kind: str, moving: ForwardOutput, fixed: ForwardOutput, reduction: str = "mean") -> Tensor:
    """D(moving || sg(fixed)): gradient reaches `moving` only."""
    if kind == "kl":
        return AF.kl_to_fixed(moving.logits, fixed.log_probs, reduction)
    return AF.mse(moving.logits, fixed.logits.detach(), reduction)


def _symmetric(kind: str, a: ForwardOutput, b: ForwardOutput) -> Tensor:
    """D(a||b) + D(b||a), each term's target detached (for MSE: the squared error, gradient to both)."""
    if kind == "kl":
        return AF.symmetric_kl(a.logits, b.logits, log_a=a.cached_log_probs)
    return AF.mse(a.logits, b.logits)


def _bregman(kind: str, student: ForwardOutput, teacher: ForwardOutput) -> Tensor:
    """SMART's proximal term: symmetric KL (squared error for regression) to the constant teacher."""
    if kind == "kl":
        return _moving_to_fixed(kind, student, teacher) + _moving_from_fixed(kind, teacher, student)
    return AF.mse(student.logits, teacher.logits.detach())


def _total(task_loss: Tensor | None, *terms: Tensor) -> Tensor:
    total = sum(terms)
    return total if task_loss is None else task_loss + total


@register
class VAT(Method):
    name = "vat"
    summary = "virtual adversarial training: one power-iteration step from a random probe of size xi (Miyato et al. 2018)"
    needs_labels = False

    @dataclass
    class Config:
        eps: float = 1.0  # L2 radius of the adversarial delta per example
        # Size of the random probe of the power iteration, per example. The finite difference it takes
        # must stand above float32/bf16 rounding of the logits: at 1e-6 the ascent gradient was zero or
        # pointed elsewhere (cosine 0.08-0.73 to float64); see tests/unit/test_smoothness_math.py.
        xi: float = 1e-1
        alpha: float = 1.0  # weight of KL(sg(clean) || adv)

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        c = self.config
        clean = self.clean_forward(target, batch)
        started = time.perf_counter()
        probe = self.zeros(target, batch).detach()
        mask = self.mask_of(batch, probe.shape, probe.device)
        probe = (c.xi * AF.normalize(torch.randn_like(probe) * mask, "l2", "example", guard=1e-12)).requires_grad_()
        probe_out = self.perturbed(target, batch, probe)
        objective = _moving_from_fixed(target.divergence, clean, probe_out, reduction="sum")
        grad = self.ascent_grad(objective, probe)
        if grad is None:
            trainer.backward(clean.loss)
            return self.report(clean.loss, None, None, None, mask, started, skipped=True)
        delta = c.eps * AF.normalize(grad, "l2", "example", guard=1e-12) * mask
        adv = self.perturbed(target, batch, delta)
        adv_loss = _moving_from_fixed(target.divergence, clean, adv)
        trainer.backward(_total(clean.loss, c.alpha * adv_loss))
        return self.report(clean.loss, adv_loss, delta, grad, mask, started)


@dataclass
class SmoothnessConfig:
    """The adversarial smoothness term shared by ALUM and SMART."""

    alpha: float = 10.0  # weight of symKL(clean, adv): 10 in the ALUM paper's pretraining, 1 for fine-tuning
    sigma: float = 1e-5  # std of delta's Gaussian initialisation
    step_size: float = 1e-3  # eta
    steps: int = 1  # K ascent steps
    norm: Literal["linf", "l2"] = "linf"
    level: Literal["token", "example"] = "token"
    # How delta is updated (functional.ascent_step; the README's "Three update rules"):
    #   gradient:  eta * g / ||g||, the code released with the papers (mt-dnn 4b92661, 5af3326)
    #   normalize: (delta + eta g) / ||.||, mt-dnn master after the papers (cceaa00, f0b40b6); eps unused
    #   project:   Proj_eps(delta + eta g / ||g||), the papers' Algorithm 1; eps is the radius
    constraint: Literal["gradient", "normalize", "project"] = "gradient"
    eps: float = 1e-5
    # Cut the perturbed passes from the graph below the site, as every released version does: the
    # smoothness term then trains the layers above where delta enters, and nothing below.
    detach_embeddings: bool = True
    # Replay the clean pass's dropout masks in the ascent and adversarial passes (the released code
    # draws new ones; alum.adversarial.dropout says why one may want the same ones).
    share_dropout: bool = False
    # embeddings: the embedding block's output, after LayerNorm (the official code, where a unit-norm delta
    # is on the activations' scale); words: the raw word embeddings, where it can drown the token.
    site: Literal["embeddings", "words"] = "embeddings"

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")


class _Smoothness(Method):
    needs_labels = False

    def perturbed(self, target: Target, batch: dict[str, Tensor], delta: Tensor,
                  masks: dropout.RandomState | None = None) -> ForwardOutput:
        """The pass at x + delta, cut below the site if so configured, replaying `masks` if given."""
        with dropout.replaying(masks), target.perturbation.applied(delta, self.site, self.config.detach_embeddings):
            return target(batch)

    def adversarial_delta(
        self, target: Target, batch: dict[str, Tensor], clean: ForwardOutput, mask: Tensor,
        masks: dropout.RandomState | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """delta after K ascent steps on KL(sg(clean) || adv) from a N(0, sigma^2) start, and the last
        ascent gradient; (None, None) when the gradient is not finite."""
        c = self.config
        delta = torch.randn(self.delta_shape(target, batch), device=mask.device) * c.sigma * mask
        grad = None
        for _ in range(c.steps):
            delta.requires_grad_()
            adv = self.perturbed(target, batch, delta, masks)
            grad = self.ascent_grad(_moving_from_fixed(target.divergence, clean, adv), delta)
            if grad is None:
                return None, None
            delta = AF.ascent_step(
                delta.detach(), grad, c.step_size, constraint=c.constraint, p=c.norm, level=c.level, eps=c.eps
            ) * mask
        return delta, grad

    def smoothness_loss(
        self, target: Target, batch: dict[str, Tensor], clean: ForwardOutput, mask: Tensor,
        clean_masks: dropout.RandomState,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        masks = clean_masks if self.config.share_dropout else None
        delta, grad = self.adversarial_delta(target, batch, clean, mask, masks)
        if delta is None:
            return None, None, None
        adv = self.perturbed(target, batch, delta, masks)
        return _symmetric(target.divergence, clean, adv), delta, grad


@register
class ALUM(_Smoothness):
    name = "alum"
    summary = "ALUM: task loss + alpha * symKL(clean, adv), delta by ascent on KL (Liu et al. 2020)"
    Config = SmoothnessConfig

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        clean_masks = dropout.capture(batch["input_ids"].device)
        clean = self.clean_forward(target, batch)
        started = time.perf_counter()
        mask = self.mask_of(batch, self.delta_shape(target, batch), clean.logits.device)
        adv_loss, delta, grad = self.smoothness_loss(target, batch, clean, mask, clean_masks)
        if adv_loss is None:
            trainer.backward(clean.loss)
            return self.report(clean.loss, None, None, None, mask, started, skipped=True)
        trainer.backward(_total(clean.loss, self.config.alpha * adv_loss))
        return self.report(clean.loss, adv_loss, delta, grad, mask, started)


@dataclass
class SmartConfig(SmoothnessConfig):
    alpha: float = 1.0  # lambda_s, the smoothness weight (the SMART paper tries 1, 3, 5)
    mu: float = 1.0  # weight of the Bregman proximal term symD(f(x; theta), f(x; teacher))
    beta: float = 0.99  # teacher momentum early on
    beta_late: float = 0.999  # teacher momentum after `beta_switch` of the updates
    beta_switch: float = 0.1


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

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        if self.student is None:
            raise RuntimeError("SMART.setup(target, total_updates) must run before training")
        if self.teacher is None:
            self.teacher = self.new_teacher()
        c = self.config
        clean_masks = dropout.capture(batch["input_ids"].device)
        clean = self.clean_forward(target, batch)
        started = time.perf_counter()
        mask = self.mask_of(batch, self.delta_shape(target, batch), clean.logits.device)
        self.teacher.model.train(target.model.training)
        with torch.no_grad(), _autocast_like(target.model), dropout.replaying(clean_masks):
            anchor = target.forward(self.teacher.model, batch)
        proximal = _bregman(target.divergence, clean, anchor)
        adv_loss, delta, grad = self.smoothness_loss(target, batch, clean, mask, clean_masks)
        if adv_loss is None:
            trainer.backward(_total(clean.loss, c.mu * proximal))
            return self.report(clean.loss, None, None, None, mask, started, skipped=True)
        trainer.backward(_total(clean.loss, c.alpha * adv_loss, c.mu * proximal))
        return self.report(clean.loss, adv_loss, delta, grad, mask, started)

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
