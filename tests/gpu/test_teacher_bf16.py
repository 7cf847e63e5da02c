"""SMART with a bf16 student on a GPU: its momentum teacher keeps float32 weights on the device and moves by
(1 - beta) of the difference even where that is far below bf16's resolution; the step stays finite."""

from __future__ import annotations

import math

import pytest
import torch

from alum.adversarial import Target, build_method
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

pytestmark = pytest.mark.gpu


def test_smart_teacher_stays_float32_with_a_bf16_student():
    student = tiny_classifier("bert").cuda().to(torch.bfloat16).train()
    batch = {k: v.cuda() for k, v in make_batch(0).items()}
    target = Target(student, classification_forward)
    method = build_method("smart", {"beta": 0.999, "beta_late": 0.999})
    method.setup(target, total_updates=4)
    trainer = RecordingTrainer(student, lr=1e-2)

    report = method.step(target, batch, trainer)
    teacher = method.teacher.model
    assert all(p.dtype == torch.float32 and p.is_cuda for p in teacher.parameters())
    assert report.skipped == 0 and math.isfinite(report.loss) and math.isfinite(report.adv_loss)

    old = [p.clone() for p in teacher.parameters()]
    trainer.optimizer_step()
    method.on_optimizer_step(target, 1)
    for t_old, t_new, s in zip(old, teacher.parameters(), student.parameters()):
        torch.testing.assert_close(t_new, 0.999 * t_old + 0.001 * s.detach().float())
    # a step of 1e-3 of the difference: kept in float32, where bf16 would round most of it away
    assert any(not torch.equal(a, b) for a, b in zip(old, teacher.parameters()))
    report = method.step(target, batch, trainer)  # the Bregman term: an fp32 teacher against a bf16 student
    assert math.isfinite(report.adv_loss)
