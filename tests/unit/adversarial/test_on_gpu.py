"""On a CUDA device, in the reduced precision users train in: every method's tensors stay on the device
(random starts, dropout replay of the CUDA generator, SMART's teacher) and its step is finite and trains.
Skipped without a GPU (the `gpu` marker; tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import METHODS, Target, build_method
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_steps_on_the_device_in_reduced_precision(name, dtype):
    model = tiny_classifier("bert").cuda().train()
    batch = {k: v.cuda() for k, v in make_batch(0).items()}
    method = build_method(name)
    target = Target(model, classification_forward)
    method.setup(target, total_updates=4)
    trainer = RecordingTrainer(model, apply=True, lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cuda", dtype=dtype):
        report = method.step(target, batch, trainer)
    if not method.optimizer_steps:
        trainer.optimizer_step()
    method.on_optimizer_step(target, 1)
    assert report.skipped == 0 and all(torch.isfinite(torch.tensor(x)) for x in trainer.losses)
    if method.last_delta is not None:
        assert method.last_delta.is_cuda and torch.isfinite(method.last_delta).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
