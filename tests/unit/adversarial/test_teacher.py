"""SMART's momentum teacher (alum/adversarial/teacher.py): born at the method's first step, its beta schedule
counting its own updates, never trained, and saved and restored with the method's state."""

from __future__ import annotations

import torch

from alum.adversarial import Target, build_method
from support.models import classification_forward, make_batch, setup, tiny_classifier
from support.trainers import RecordingTrainer


def test_smart_teacher_is_born_at_the_first_step_and_counts_its_own_updates():
    """In pretraining SMART starts at the switch: the teacher must be the model as it is then, and its beta
    schedule must count adversarial updates, not the masked-LM steps before them."""
    model, forward, _ = setup("classification")
    target = Target(model, forward)
    method = build_method("smart", {"beta": 0.9, "beta_late": 0.99, "beta_switch": 0.2})
    method.setup(target, total_updates=10)
    trainer = RecordingTrainer(model, lr=0.5)
    for update in range(1, 6):  # updates before the switch: no teacher yet, nothing to move
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)
        method.on_optimizer_step(target, update)
    assert method.teacher is None
    method.step(target, make_batch(1), trainer)
    for t, s in zip(method.teacher.model.parameters(), model.parameters()):
        assert torch.equal(t, s.detach())  # a copy of the model at the switch
    betas = []
    for update in range(6, 10):
        old = [p.clone() for p in method.teacher.model.parameters()]
        trainer.optimizer_step()
        method.on_optimizer_step(target, update)
        beta = 0.9 if method.teacher.updates <= 2 else 0.99  # 20% of 10 adversarial updates
        betas.append(beta)
        for t_old, t_new, s in zip(old, method.teacher.model.parameters(), model.parameters()):
            torch.testing.assert_close(t_new, beta * t_old + (1 - beta) * s.detach())
        method.step(target, make_batch(update), trainer)
    assert method.teacher.updates == 4 and betas == [0.9, 0.9, 0.99, 0.99]
    assert all(not p.requires_grad and p.grad is None for p in method.teacher.model.parameters())


def test_smart_state_round_trips_with_and_without_a_teacher():
    model, forward, batch = setup("classification")
    target = Target(model, forward)
    method = build_method("smart")
    method.setup(target, total_updates=10)
    unborn = method.state_dict()
    trainer = RecordingTrainer(model, lr=0.5)
    method.step(target, batch, trainer)
    trainer.optimizer_step()
    method.on_optimizer_step(target, 1)
    fresh = build_method("smart")
    fresh.setup(Target(tiny_classifier("bert", seed=1), forward), total_updates=10)
    fresh.load_state_dict(method.state_dict())
    assert fresh.teacher.updates == 1
    for a, b in zip(method.teacher.model.parameters(), fresh.teacher.model.parameters()):
        assert torch.equal(a, b)
    fresh.load_state_dict(unborn)  # as the preflight's undo does
    assert fresh.teacher is None


def test_smart_runs_on_a_float64_model_with_a_float64_teacher():
    """A float64 student's logits meet the teacher's in one dot product: the teacher must be float64 too (it
    was float32, a RuntimeError even with mu = 0). Its Bregman term is exactly 0 at the teacher's birth."""
    model, forward, batch = setup("classification", float64=True)
    target = Target(model, forward)
    for mu in (0.0, 1.0):
        method = build_method("smart", {"mu": mu})
        method.setup(target, total_updates=10)
        report = method.step(target, batch, RecordingTrainer(model, apply=False))
        assert next(method.teacher.model.parameters()).dtype == torch.float64
        assert report.loss == report.loss and report.adv_loss is not None
        clean = forward(model, batch)
        (term,) = method.extra_terms(target, batch, type("Clean", (), {"out": clean, "random_state": None})())
        assert float(term) == 0.0


def test_bregman_term_at_the_teachers_birth_is_zero_in_float32_and_rounding_in_half_precision():
    """The teacher equals the student at birth and replays its masks: the term is exactly 0 for a float32
    student. A bf16 or fp16 student's teacher is float32 run under autocast, so the two compute the same
    function along different roundings (LayerNorm in float32 against half precision): small, not 0."""
    from alum.adversarial import dropout
    from alum.adversarial.base import CleanPass

    for dtype, low, high in ((torch.float32, 0.0, 0.0), (torch.bfloat16, 1e-12, 1e-6), (torch.float16, 1e-14, 1e-8)):
        model = tiny_classifier("bert").train().to(dtype)
        target = Target(model, classification_forward)
        method = build_method("smart")
        method.setup(target, total_updates=10)
        method.teacher = method.new_teacher()
        batch = make_batch(0)
        masks = dropout.capture(torch.device("cpu"))
        clean = CleanPass(classification_forward(model, batch), None, None, masks)
        (term,) = method.extra_terms(target, batch, clean)
        assert low <= float(term.detach()) <= high, dtype
