"""EngineTrainer, the DeepSpeed adapter (alum/training/engine.py), lends the methods the fp16 loss scale:
with an engine whose backward scales the loss as an fp16 engine does, every method's delta is the one it
takes unscaled (and a scale the method did not hear of would show: it changes what underflows or, here, the
gradient's size)."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import Target, build_method
from alum.training.engine import EngineTrainer
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

SCALE = 1024.0


class FP16Engine:
    """What EngineTrainer uses of a DeepSpeed engine, with fp16's loss scaling: backward runs on loss * S
    and the step unscales the gradients; the scale is the optimizer's `cur_scale`."""

    def __init__(self, model, scale):
        self.module, self.optimizer, self.global_steps = model, type("Optimizer", (), {"cur_scale": scale})(), 0

    def fp16_enabled(self):
        return True

    def set_gradient_accumulation_boundary(self, boundary):
        pass

    def backward(self, loss):
        (loss * self.optimizer.cur_scale).backward()

    def step(self):
        self.global_steps += 1
        self.module.zero_grad(set_to_none=True)


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
    torch.testing.assert_close(deltas[1], deltas[0], rtol=1e-4, atol=1e-7)
    assert grads[1] == pytest.approx(grads[0], rel=1e-4)  # unscaled: 1024x too large otherwise
