"""EngineTrainer, the DeepSpeed adapter (alum/training/engine.py), lends the methods the fp16 loss scale:
with an engine whose backward scales the loss as an fp16 engine does, every method's delta is the one it
takes unscaled (and a scale the method did not hear of would show: it changes what underflows or, here, the
gradient's size)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from alum.adversarial import Method, StepReport, Target, build_method
from alum.training.engine import EngineTrainer
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

SCALE = 1024.0


class FP16Engine:
    """What EngineTrainer uses of a DeepSpeed engine, with fp16's loss scaling: backward runs on loss * S
    and the step unscales the gradients; the scale is the optimizer's `loss_scale`."""

    def __init__(self, model, scale):
        self.module, self.optimizer, self.global_steps = model, type("Optimizer", (), {"loss_scale": scale})(), 0

    def fp16_enabled(self):
        return True

    def set_gradient_accumulation_boundary(self, boundary):
        pass

    def backward(self, loss):
        (loss * self.optimizer.loss_scale).backward()

    def step(self):
        self.global_steps += 1
        self.module.zero_grad(set_to_none=True)

    def was_step_applied(self):
        return True


@pytest.mark.parametrize("name,options", [
    ("fgm", {"eps": 0.5}),
    ("pgd", {"steps": 2, "eps": 0.5, "step_size": 0.3}),
    ("vat", {}),
    ("alum", {"constraint": "project", "eps": 0.05, "steps": 2}),
    ("freelb", {"steps": 3, "step_size": 0.05}),
    ("yopo", {"outer": 2, "inner": 2, "eps": 0.3, "step_size": 0.2}),
])
def test_the_engine_trainer_lends_the_fp16_loss_scale(name, options):
    model, batch = tiny_classifier("bert").eval(), make_batch(4)
    deltas, grads = [], []
    for trainer_of in (lambda m, t: RecordingTrainer(model), lambda m, t: EngineTrainer(FP16Engine(model, SCALE), m, t)):
        method = build_method(name, options)
        target = Target(model, classification_forward)
        method.setup(target, total_updates=1)
        trainer = trainer_of(method, target)
        torch.manual_seed(0)
        report = method.step(target, batch, trainer)
        model.zero_grad(set_to_none=True)
        assert method.skipped_total == 0 and report.skipped == 0
        deltas.append(method.last_delta)
        grads.append(report.grad_norm)
    assert trainer.loss_scale() == SCALE
    # Exactly: a loss scale of 2^10 multiplies every number of the scaled backward by 2^10 with no rounding
    # (nothing overflows or becomes subnormal here), and the unscaling divides it out exactly.
    torch.testing.assert_close(deltas[1], deltas[0], rtol=0, atol=0)
    assert grads[1] == grads[0]  # unscaled: 1024x too large otherwise


class AccumulatingEngine:
    """DeepSpeed's rule for an explicitly set boundary: `step()` updates only when the flag says boundary, and
    an update with no gradient at all fails (DeepSpeed 0.19's gradient clipping raises an IndexError)."""

    def __init__(self, model):
        self.module, self.optimizer, self.global_steps, self.boundary = model, None, 0, False

    def fp16_enabled(self):
        return False

    def set_gradient_accumulation_boundary(self, boundary):
        self.boundary = boundary

    def backward(self, loss):
        loss.backward()

    def step(self):
        if not self.boundary:
            return
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        if not grads:
            raise IndexError("an optimizer step with no gradients")
        self.global_steps += 1
        self.module.zero_grad(set_to_none=True)

    def was_step_applied(self):
        return True


def test_a_dropped_first_micro_batch_does_not_step_on_the_last_updates_boundary():
    """A non-finite first micro-batch has no backward, so nothing sets the boundary flag for it: the trainer
    must clear it, or the engine steps mid-window on the flag the previous update's last backward left."""
    model, batch = tiny_classifier("bert").eval(), make_batch(4)
    bad = {"on": False}

    def forward(m, b):
        out = classification_forward(m, b)
        return type(out)(out.logits, out.loss * float("nan")) if bad["on"] else out

    engine, method = AccumulatingEngine(model), build_method("none")
    trainer = EngineTrainer(engine, method, Target(model, forward))
    assert trainer.update([batch, batch])[1] and engine.global_steps == 1  # leaves the flag at True

    class FirstBad(dict):
        pass

    real_loss = method.loss

    def loss(target, b, t):
        bad["on"] = isinstance(b, FirstBad)
        return real_loss(target, b, t)

    method.loss = loss
    reports, stepped = trainer.update([FirstBad(batch), batch])
    assert stepped and engine.global_steps == 2 and trainer.bad_losses == 1
    reports, stepped = trainer.update([FirstBad(batch), FirstBad(batch)])
    assert not stepped and engine.global_steps == 2 and trainer.bad_losses == 3


class OverflowingEngine(FP16Engine):
    """DeepSpeed 0.19's fp16 step on an overflow: the weights stay, the loss scale drops, and `global_steps`
    still counts the step; only `was_step_applied()` tells."""

    def step(self):
        super().step()
        self.optimizer.loss_scale /= 2

    def was_step_applied(self):
        return False


def test_an_fp16_overflow_step_is_a_skipped_update_that_does_not_move_the_teacher():
    model, batch = tiny_classifier("bert").eval(), make_batch(4)
    method = build_method("smart")
    target = Target(model, classification_forward)
    method.setup(target, total_updates=4)
    moved = []
    method.on_optimizer_step = lambda target, step: moved.append(step)
    trainer = EngineTrainer(OverflowingEngine(model, SCALE), method, target)
    reports, stepped = trainer.update([batch])
    assert not stepped and moved == []
    applied = EngineTrainer(FP16Engine(model, SCALE), method, target)
    assert applied.update([batch])[1] and moved == [1]


class CountingEngine(AccumulatingEngine):
    def __init__(self, model):
        super().__init__(model)
        self.calls: list[str] = []

    def backward(self, loss):
        self.calls.append("backward")
        super().backward(loss)

    def step(self):
        self.calls.append("step")
        super().step()


class StepOnly(Method):
    """A method written against the callback form alone (it implements `step`, not `loss`)."""

    name, needs_labels = "step-only", True

    @dataclass
    class Config:
        pass

    def step(self, target, batch, trainer):
        out = self.clean_forward(target, batch)
        trainer.backward(out.loss)
        return StepReport(loss=float(out.loss.detach()))


@pytest.mark.parametrize("method,calls", [
    (lambda: build_method("fgm"), ["backward", "step"] * 2),  # the loop's one backward per micro-batch
    (lambda: build_method("freelb", {"steps": 3}), (["backward"] * 3 + ["step"]) * 2),  # the method's, per pass
    (lambda: StepOnly(), ["backward", "step"] * 2),
])
def test_an_update_is_a_backward_per_loss_and_an_engine_step_per_micro_batch(method, calls):
    model, batch = tiny_classifier("bert").eval(), make_batch(4)
    engine, method = CountingEngine(model), method()
    target = Target(model, classification_forward)
    method.setup(target, total_updates=1)
    reports, stepped = EngineTrainer(engine, method, target).update([batch, batch])
    assert engine.calls == calls and stepped and engine.global_steps == 1 and len(reports) == 2
