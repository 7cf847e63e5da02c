"""R-Drop's loss pinned against the paper's Eq. (3) written out here with plain torch: the task loss of two
passes under their own dropout masks plus alpha * 1/2 (KL(P1||P2) + KL(P2||P1)), gradient into both passes
(nothing detached), for classification, masked LM and regression; and what it is in eval mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alum.adversarial import METHODS, Target, build_method
from support.models import TASKS, classification_forward, make_batch, setup, tiny_classifier
from support.trainers import RecordingTrainer


def kl(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)), averaged over rows, as torch computes it; gradient to both arguments."""
    return F.kl_div(F.log_softmax(q_logits.float(), -1), F.log_softmax(p_logits.float(), -1), reduction="batchmean",
                    log_target=True)


def run(method, model, forward, batch, seed=5):
    target = Target(model, forward, divergence="mse" if forward is regression_forward else "kl")
    method.setup(target, total_updates=10)
    trainer = RecordingTrainer(model)
    torch.manual_seed(seed)
    report = method.step(target, batch, trainer)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return report, trainer, grads


def regression_forward(model, batch):
    from alum.adversarial import ForwardOutput

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return ForwardOutput(out, F.mse_loss(out.squeeze(-1).float(), batch["labels"]))


def assert_same_gradients(model, grads):
    assert set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("task", TASKS)
def test_rdrop_loss_and_every_gradient_are_the_papers(task):
    """Train mode: the two passes draw their own masks (the same two draws here, replayed from the seed), and
    the symmetric KL carries gradient into both of them (the released code detaches neither side)."""
    model, forward, batch = setup(task, train=True)
    report, trainer, grads = run(build_method("rdrop", {"alpha": 0.7}), model, forward, batch)

    torch.manual_seed(5)
    first, second = forward(model, batch), forward(model, batch)
    mutual = 0.5 * (kl(first.logits, second.logits) + kl(second.logits, first.logits))
    expected = first.loss + second.loss + 0.7 * mutual
    expected.backward()
    assert float(mutual.detach()) > 1e-6  # the masks differ: the term is not vacuous
    assert trainer.backwards == 1
    assert trainer.losses[0] == pytest.approx(float(expected), rel=1e-5)
    assert report.loss == pytest.approx(float(first.loss), rel=1e-6)
    assert report.adv_loss == pytest.approx(float(mutual), rel=1e-5)
    assert report.delta_norm is None and report.delta_effective is None  # no perturbation anywhere
    assert_same_gradients(model, grads)


def test_rdrop_regression_is_both_losses_plus_the_squared_error_between_passes():
    model = tiny_classifier("bert", num_labels=1).train()
    batch = make_batch(3)
    batch["labels"] = torch.linspace(0.0, 5.0, batch["input_ids"].shape[0])
    report, trainer, grads = run(build_method("rdrop", {"alpha": 2.0}), model, regression_forward, batch)

    torch.manual_seed(5)
    first, second = regression_forward(model, batch), regression_forward(model, batch)
    expected = first.loss + second.loss + 2.0 * F.mse_loss(first.logits, second.logits)
    expected.backward()
    assert trainer.losses[0] == pytest.approx(float(expected), rel=1e-5)
    assert_same_gradients(model, grads)


def test_rdrop_without_labels_trains_on_the_kl_alone():
    model = tiny_classifier("bert").train()
    batch = {k: v for k, v in make_batch(3).items() if k != "labels"}
    report, trainer, grads = run(build_method("rdrop"), model, classification_forward, batch)
    torch.manual_seed(5)
    first, second = classification_forward(model, batch), classification_forward(model, batch)
    expected = 0.5 * (kl(first.logits, second.logits) + kl(second.logits, first.logits))
    expected.backward()
    assert report.loss is None
    assert trainer.losses[0] == pytest.approx(float(expected), rel=1e-5)
    assert_same_gradients(model, grads)


def test_rdrop_in_eval_mode_is_twice_the_task_loss():
    """Without dropout the two passes agree exactly: the term is 0 and only the doubled task loss is left."""
    model, forward, batch = setup("classification", train=False)
    report, trainer, _ = run(build_method("rdrop"), model, forward, batch)
    clean = forward(model, batch)
    assert report.adv_loss == 0.0
    assert trainer.losses[0] == pytest.approx(2 * float(clean.loss), rel=1e-6)


def test_rdrop_is_listed_with_its_option():
    assert "rdrop" in METHODS
    with pytest.raises(Exception, match="alpha"):
        build_method("rdrop", {"alpha": -1.0})
