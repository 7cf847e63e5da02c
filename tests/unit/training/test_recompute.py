"""Gradient checkpointing (alum/training/recompute.py): with it, one update of each method family gives the
weights it gives without (dropout included: the recomputation replays the forward's random state), the
ascent still reaches delta, the layers really are recomputed, and a family without checkpointing is refused."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import Target, build_method
from alum.errors import UserError
from alum.training.recompute import check_supported, enable_gradient_checkpointing
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

pytestmark = pytest.mark.usefixtures("one_thread")

# One of each family: plain, the label-free smoothness term (with SMART's teacher), the multi-pass ones
# (FreeLB's backward per pass) and the projected ascent.
METHODS = ["none", "smart", "freelb", "pgd"]


def one_update(method_name: str, checkpointing: bool) -> dict[str, torch.Tensor]:
    """The weights after one SGD update of `method_name` on a fresh tiny BERT in train mode (dropout on)."""
    model = tiny_classifier("bert", seed=0)
    if checkpointing:
        enable_gradient_checkpointing(model, "tiny")
    model.train()
    target = Target(model, classification_forward)
    method = build_method(method_name)
    method.setup(target, total_updates=10)
    trainer = RecordingTrainer(model, lr=0.5)
    torch.manual_seed(1)  # delta's random start and the dropout masks: the same draws in both runs
    batch = make_batch(seed=3)
    if method.calls_backward:
        method.step(target, batch, trainer)
    else:
        loss, _ = method.loss(target, batch, trainer)
        trainer.backward(loss)
    trainer.optimizer_step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", METHODS)
def test_checkpointing_leaves_one_update_as_it_was(name):
    plain, recomputed = one_update(name, False), one_update(name, True)
    start = tiny_classifier("bert", seed=0).state_dict()
    moved = [k for k in plain if not torch.equal(plain[k], start[k])]
    assert "bert.encoder.layer.0.attention.self.query.weight" in moved  # the update reached the layers
    for key in plain:
        # The recomputation runs the same float32 kernels on the same inputs with the same dropout masks, so
        # the gradients agree to float32 rounding: a relative 1e-6 (a few ulps of sums of ~100 terms), times
        # lr 0.5 on weights of order 0.1.
        torch.testing.assert_close(recomputed[key], plain[key], rtol=1e-5, atol=1e-6, msg=key)


def test_the_layers_are_recomputed_in_the_backward():
    model = tiny_classifier("bert", seed=0)
    enable_gradient_checkpointing(model, "tiny")
    model.train()
    calls = []
    # a module inside the checkpointed layer (the layer's own hooks run once, outside the checkpoint)
    model.bert.encoder.layer[0].attention.register_forward_hook(lambda *_: calls.append(1))
    classification_forward(model, make_batch()).loss.backward()
    assert len(calls) == 2  # the forward, and its replay in the backward


def test_the_ascent_reaches_delta_through_checkpointed_layers():
    """autograd.grad with respect to delta alone, at the detached embedding output as ALUM/SMART's released
    rule takes it: the reentrant variant refuses this, the non-reentrant one gives a gradient."""
    model = tiny_classifier("bert", seed=0)
    enable_gradient_checkpointing(model, "tiny")
    model.train()
    target = Target(model, classification_forward)
    batch = make_batch()
    delta = torch.zeros(target.perturbation.shape(batch["input_ids"], "embeddings"), requires_grad=True)
    with target.perturbation.applied(delta, "embeddings", detach=True):
        loss = target(batch).loss
    (grad,) = torch.autograd.grad(loss, delta)
    assert grad.abs().sum() > 0

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    with target.perturbation.applied(delta, "embeddings", detach=True):
        loss = target(batch).loss
    with pytest.raises(RuntimeError, match="use_reentrant=True"):
        torch.autograd.grad(loss, delta)


def test_a_family_without_checkpointing_is_refused_in_one_line():
    from transformers import AlbertConfig, AlbertForSequenceClassification

    assert not AlbertForSequenceClassification.supports_gradient_checkpointing
    with pytest.raises(UserError) as err:
        check_supported(AlbertForSequenceClassification, "models/albert")
    assert str(err.value) == ("models/albert: AlbertForSequenceClassification does not support gradient "
                              "checkpointing (supports_gradient_checkpointing is False); set "
                              "train.gradient_checkpointing=false")
    model = AlbertForSequenceClassification(AlbertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=64, embedding_size=16))
    with pytest.raises(UserError, match="gradient_checkpointing=false"):
        enable_gradient_checkpointing(model, "models/albert", "gradient_checkpointing")
