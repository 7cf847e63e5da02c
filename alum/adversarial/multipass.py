"""Methods that accumulate parameter gradients over several passes of one batch (FreeLB, YOPO) or take an
optimizer step on every pass (FreeAT). Each pass is a full forward and `trainer.backward`; delta's gradient
comes out of that same backward (delta is a leaf), so no pass is spent on the ascent alone.

Under DeepSpeed the loop's `trainer.backward` marks only the last pass of the last micro-batch as the
gradient-accumulation boundary, so ZeRO reduces the summed gradient once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from alum.adversarial import dropout
from alum.adversarial import functional as AF
from alum.adversarial.ascent import Rule
from alum.adversarial.base import Method, StepReport, Trainer, loss_scale
from alum.adversarial.registry import register
from alum.adversarial.target import Target


class _MultiPass(Method):
    def checked(self, grad: Tensor | None) -> Tensor | None:
        """`grad` if it is finite; else None, and the skip counted."""
        if grad is None or not torch.isfinite(grad).all():
            self.skipped_total += 1
            return None
        return grad

    def pass_grad(self, delta: Tensor, trainer: Trainer) -> Tensor | None:
        """delta's gradient left by the pass's backward, unscaled; None (and counted) if not finite."""
        if delta.grad is None:
            return self.checked(None)
        return self.checked(AF.f32(delta.grad) / loss_scale(trainer))


@register
class FreeLB(_MultiPass):
    name = "freelb"
    size_options = ("step_size", "init_mag")
    summary = "FreeLB: K passes at x + delta_k, parameter gradients averaged over them (Zhu et al. 2020)"

    @dataclass
    class Config:
        steps: int = 3  # K passes (and K - 1 ascent steps between them)
        step_size: float = 0.1  # adv_lr: delta += step_size * g / ||g||_F per example
        init_mag: float = 0.1  # delta_0 ~ U(-1, 1) * init_mag / sqrt(length * dim), zero at padding
        max_norm: float = 0.0  # per-example Frobenius bound on delta; 0 = unbounded (the reference default)
        share_dropout: bool = True  # every pass replays the first pass's dropout masks (alum.adversarial.dropout)

        def validate(self) -> None:
            if self.steps < 1:
                raise ValueError("steps must be at least 1")

    @property
    def backward_passes(self) -> int:
        return self.config.steps

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        c = self.config
        shape = target.perturbation.shape(batch["input_ids"])
        device = batch["input_ids"].device
        mask = self.mask_of(batch, shape, device)
        lengths = mask.sum(dim=(1, 2), keepdim=True).clamp_min(1)
        delta = torch.empty(shape, device=device).uniform_(-1, 1) * mask * (c.init_mag / (lengths * shape[-1]).sqrt())
        started = time.perf_counter()
        first = grad = None
        total = 0.0
        skipped = False
        masks = dropout.capture(device) if c.share_dropout else None
        for k in range(c.steps):
            delta = delta.detach().requires_grad_()
            with dropout.replaying(masks if k else None):
                out = self.clean_forward(target, batch, delta)
            trainer.backward(out.loss / c.steps)
            total += float(out.loss.detach()) / c.steps
            first = out.loss if first is None else first
            if k == c.steps - 1 or skipped:
                continue
            grad = self.pass_grad(delta, trainer)
            if grad is None:  # keep delta as it is: the remaining passes still average correctly
                skipped = True
                continue
            delta = delta.detach() + c.step_size * AF.normalize(grad, "l2", "example", guard=1e-12) * mask
            if c.max_norm > 0:
                delta = AF.project(delta, c.max_norm, "l2", "example")
        report = self.report(target, first, torch.tensor(total), delta, grad, mask, started, skipped=skipped)
        return report


@register
class FreeAT(_MultiPass):
    name = "freeat"
    size_options = ("eps",)
    summary = "free adversarial training: replay the batch K times, an optimizer step on each (Shafahi et al. 2019)"

    @dataclass
    class Config:
        replays: int = 3  # K; the paper divides the number of epochs by K to keep the cost
        eps: float = 0.01  # l-inf bound of delta, and the sign step's size
        # Start each batch from the last batch's delta, as the reference carries its global noise across
        # minibatches (cropped or zero-padded to the new batch's shape, zero at its padding); off: from 0.
        carry: bool = True

        def validate(self) -> None:
            if self.replays < 1:
                raise ValueError("replays must be at least 1")

    @property
    def backward_passes(self) -> int:
        return self.config.replays

    @property
    def optimizer_steps(self) -> int:
        return self.config.replays

    def __init__(self, config=None):
        super().__init__(config)
        self.carried: Tensor | None = None

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        c = self.config
        delta = self.zeros(target, batch).detach()
        mask = self.mask_of(batch, delta.shape, delta.device)
        if c.carry and self.carried is not None:
            delta = _fitted(self.carried.to(delta.device), delta.shape) * mask
        started = time.perf_counter()
        first = last = grad = None
        skipped = False
        for _ in range(c.replays):
            delta = delta.detach().requires_grad_()
            out = self.clean_forward(target, batch, delta)
            trainer.backward(out.loss)
            first, last = (out.loss if first is None else first), out.loss
            new_grad = None if skipped else self.pass_grad(delta, trainer)
            trainer.optimizer_step()
            if new_grad is None:
                skipped = True
                continue
            grad = new_grad
            delta = (delta.detach() + c.eps * grad.sign()).clamp(-c.eps, c.eps) * mask
        self.carried = delta.detach()
        return self.report(target, first, last, delta, grad, mask, started, skipped=skipped)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "carried": None if self.carried is None else self.carried.cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.carried = state.get("carried")


def _fitted(delta: Tensor, shape: torch.Size) -> Tensor:
    """`delta` cropped or zero-padded to `shape` along the batch and token dimensions."""
    out = delta.new_zeros(shape)
    b, t = min(shape[0], delta.shape[0]), min(shape[1], delta.shape[1])
    out[:b, :t] = delta[:b, :t]
    return out


@register
class YOPO(_MultiPass):
    name = "yopo"
    size_options = ("step_size", "eps")
    summary = "YOPO-m-n: m full passes; between them n cheap ascent steps through the embedding block only (Zhang et al. 2019)"

    @dataclass
    class Config:
        outer: int = 3  # m full forward/backward passes, parameter gradients averaged
        inner: int = 3  # n ascent steps per outer pass, through the embedding block only
        step_size: float = 0.3
        eps: float = 1.0
        norm: Literal["l2", "linf"] = "l2"  # linf steps by sign(g), as the reference
        level: Literal["example", "token"] = "example"
        random_init: bool = True  # start from a point drawn uniformly from the eps-ball (the reference), else 0

        def validate(self) -> None:
            if self.outer < 1 or self.inner < 1:
                raise ValueError("outer and inner must be at least 1")

    @property
    def backward_passes(self) -> int:
        return self.config.outer

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        c = self.config
        block = target.perturbation.block
        delta = self.zeros(target, batch).detach()
        mask = self.mask_of(batch, delta.shape, delta.device)
        if c.random_init:
            delta = AF.uniform_in_ball(delta.shape, c.eps, c.norm, c.level, mask)
        rule = Rule(c.step_size, "project", c.norm, c.level, c.eps, sign=True)
        started = time.perf_counter()
        first = grad = None
        total = 0.0
        skipped = False
        for _ in range(c.outer):
            captured: dict = {}
            delta = delta.detach().requires_grad_()
            with _capture_block(block, captured):
                out = self.clean_forward(target, batch, delta)
            trainer.backward(out.loss / c.outer)
            total += float(out.loss.detach()) / c.outer
            first = out.loss if first is None else first
            if skipped:
                continue
            # p = dL/d(block output), the "co-state" the cheap inner steps climb against.
            p = self.checked(AF.f32(captured["grad"]) / loss_scale(trainer))
            if p is None:
                skipped = True
                continue
            climbed = self.climb(delta, lambda d: _hamiltonian(target, d, captured, p), rule, mask, trainer, c.inner)
            delta, grad = climbed.delta, climbed.grad
            if grad is None:  # keep the last finite delta for the remaining outer passes
                self.skipped_total += 1
                skipped = True
        return self.report(target, first, torch.tensor(total), delta, grad, mask, started, skipped=skipped)


def _hamiltonian(target: Target, delta: Tensor, captured: dict, p: Tensor) -> Tensor:
    """<p, f_0(x + delta)>: the embedding block rerun at delta, against the co-state of the outer pass."""
    # the outer pass's dropout masks: p was taken under them (the reference reuses them too)
    with target.perturbation.applied(delta), dropout.replaying(captured["masks"]):
        first_layer = target.perturbation.block(*captured["args"], **captured["kwargs"])
    return (AF.f32(first_layer) * p).sum()


class _capture_block:
    """Records the embedding block's inputs, the random state its dropout draws from, and the gradient that
    reaches its output."""

    def __init__(self, block: torch.nn.Module, store: dict):
        self.block, self.store = block, store

    def __enter__(self):
        def before(_module, args, kwargs):
            device = next((a.device for a in [*args, *kwargs.values()] if isinstance(a, Tensor)), torch.device("cpu"))
            self.store["masks"] = dropout.capture(device)

        def hook(_module, args, kwargs, output):
            self.store["args"], self.store["kwargs"] = args, kwargs
            if output.requires_grad:
                output.register_hook(lambda g: self.store.__setitem__("grad", g.detach()))

        self.handles = [self.block.register_forward_pre_hook(before, with_kwargs=True),
                        self.block.register_forward_hook(hook, with_kwargs=True)]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
