"""What every method does through the base (alum/adversarial/base.py), on tiny random encoders: delta
spares padding, a single-pass method backs one loss once, a non-finite ascent gradient drops the term, every
method trains every family, labels are asked for, and a loop need not know of loss scaling."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import METHODS, StepReport, Target, build_method, mean_reports
from alum.errors import UserError
from support.models import FAMILIES, classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

ADVERSARIAL = [m for m in METHODS if METHODS[m].perturbs]  # the methods with a delta


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_delta_is_zero_at_padding(name):
    model = tiny_classifier("roberta")
    target = Target(model, classification_forward)
    method = build_method(name)
    method.setup(target, total_updates=10)
    batch = make_batch(3)
    method.step(target, batch, RecordingTrainer(model))
    padding = batch["attention_mask"] == 0
    assert padding.any()
    assert method.last_delta[padding].abs().max() == 0
    assert method.last_delta[~padding].abs().max() > 0


@pytest.mark.parametrize("name", ["none", "fgsm", "fgm", "pgd", "vat", "alum", "smart", "rdrop"])
def test_single_pass_methods_backward_once_and_ascent_leaves_grads_alone(name):
    model = tiny_classifier("bert")
    target = Target(model, classification_forward)
    method = build_method(name)
    method.setup(target, total_updates=10)
    sentinel = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = sentinel[n].clone()
    trainer = RecordingTrainer(model, apply=False)  # records the loss, runs no backward
    method.step(target, make_batch(1), trainer)
    assert trainer.backwards == 1
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, sentinel[n]), f"ascent touched {n}.grad"


class _PoisonGrad(torch.autograd.Function):
    """Identity forward; a NaN gradient for delta on the way back (what an fp16 overflow looks like)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_non_finite_ascent_gradient_skips_the_term_and_keeps_weights_finite(name):
    model = tiny_classifier("bert")
    target = Target(model, classification_forward)
    method = build_method(name)
    method.setup(target, total_updates=10)
    original = target.perturbation.applied
    target.perturbation.applied = lambda delta, site="words", detach=False: original(_PoisonGrad.apply(delta), site, detach)
    trainer = RecordingTrainer(model, lr=0.1)
    report = method.step(target, make_batch(5), trainer)
    trainer.optimizer_step()
    assert report.skipped == 1 and method.skipped_total == 1
    for n, p in model.named_parameters():
        assert torch.isfinite(p).all(), n


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_method_trains_every_family(family, name, precision):
    model = tiny_classifier(family)
    target = Target(model, classification_forward)
    method = build_method(name)
    method.setup(target, total_updates=4)
    trainer = RecordingTrainer(model, lr=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        report = method.step(target, make_batch(9), trainer)
    if method.optimizer_steps == 0:
        trainer.optimizer_step()
    method.on_optimizer_step(target, 1)
    assert report.skipped == 0
    assert report.loss is not None and report.loss == report.loss
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_supervised_method_without_labels_is_a_clear_error():
    model = tiny_classifier("bert")
    batch = make_batch(0)
    del batch["labels"]
    with pytest.raises(UserError, match="needs labels"):
        build_method("fgm").step(Target(model, classification_forward), batch, RecordingTrainer(model))


class PlainLoop:
    """A loop written against the first Trainer protocol: no loss scaling, so no `loss_scale`."""

    def backward(self, loss):
        loss.backward()

    def optimizer_step(self):
        pass


@pytest.mark.parametrize("name", ["fgm", "alum", "yopo"])
def test_a_loop_without_loss_scaling_need_not_say_so(name):
    model, batch = tiny_classifier("bert").eval(), make_batch(4)
    target = Target(model, classification_forward)
    deltas = []
    for trainer in (RecordingTrainer(model), PlainLoop()):
        method = build_method(name)
        method.setup(target, total_updates=1)
        torch.manual_seed(0)
        assert method.step(target, batch, trainer).skipped == 0
        deltas.append(method.last_delta)
    assert torch.equal(deltas[0], deltas[1])


def test_reports_are_averaged_over_those_that_have_each_figure():
    # the one averaging every stage's log uses (pretrain's window, finetune's update, the Trainer drop-in)
    reports = [StepReport(loss=1.0, adv_loss=0.5, delta_norm=0.2, skipped=0, adv_seconds=0.25),
               StepReport(loss=3.0, adv_loss=None, skipped=1, adv_seconds=0.5),  # its term was dropped
               StepReport(loss=2.0, adv_loss=1.5, delta_norm=0.4, delta_cosine=0.9, adv_seconds=0.25)]
    means = mean_reports(reports)
    assert means == pytest.approx({"loss": 2.0, "adv_loss": 1.0, "delta_norm": 0.3, "delta_cosine": 0.9,
                                   "adv_skipped": 1, "adv_seconds": 1.0})
    assert "grad_norm" not in means  # a figure no report has is left out, not logged as 0
    assert mean_reports([]) == {"adv_skipped": 0, "adv_seconds": 0}
