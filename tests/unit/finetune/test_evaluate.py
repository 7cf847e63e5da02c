"""The embedding-space PGD attack used for robustness: it stays in its ball, spares padding, and hurts; the
task `--task` names."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import Target, build_method
from alum.adversarial import functional as AF
from alum.errors import UserError
from alum.finetune.evaluate import AttackConfig, attack_delta, evaluate, predictions, resolve_task
from alum.finetune.tasks import task_from
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer


def loss_at(target, batch, delta):
    with torch.no_grad(), target.perturbation.applied(delta):
        return float(target(batch).loss)


@pytest.mark.parametrize("norm, level", [("l2", "token"), ("l2", "example"), ("linf", "token")])
def test_attack_stays_in_its_ball_and_is_zero_at_padding(norm, level):
    model = tiny_classifier("bert").eval()
    target = Target(model, classification_forward)
    batch = make_batch(1)
    attack = AttackConfig(eps=0.05, steps=4, norm=norm, level=level)
    delta = attack_delta(target, batch, attack)
    assert float(AF.norm(delta, norm, level).max()) <= 0.05 + 1e-6
    padding = batch["attention_mask"] == 0
    assert delta[padding].abs().max() == 0 and delta[~padding].abs().max() > 0


@pytest.mark.parametrize("norm, level", [("l2", "token"), ("linf", "example")])
def test_attack_is_the_cores_pgd_and_climbs_under_no_grad(norm, level):
    """The attack runs the core's ascent loop: from 0, with the same settings, it ends where PGD's ascent
    does, also when the caller has turned gradients off."""
    model = tiny_classifier("bert").eval()
    target = Target(model, classification_forward)
    batch = make_batch(2)
    attack = AttackConfig(eps=0.05, steps=3, norm=norm, level=level)
    pgd = build_method("pgd", {"eps": 0.05, "steps": 3, "step_size": attack.alpha, "norm": norm, "level": level})
    pgd.step(target, batch, RecordingTrainer(model, apply=False))
    with torch.no_grad():
        delta = attack_delta(target, batch, attack)
    torch.testing.assert_close(delta, pgd.last_delta, rtol=0, atol=0)  # the same operations: exactly
    assert delta.abs().max() > 0


def test_attack_raises_the_loss_more_than_random_noise_of_its_size():
    model = tiny_classifier("roberta").eval()
    target = Target(model, classification_forward)
    for seed in range(5):
        batch = make_batch(seed)
        delta = attack_delta(target, batch, AttackConfig(eps=0.05, steps=3))
        noise = torch.randn_like(delta) * AF.token_mask(batch["attention_mask"], delta.shape, delta.device)
        noise = noise / AF.norm(noise, "l2", "token").clamp_min(1e-12) * AF.norm(delta, "l2", "token")
        clean = loss_at(target, batch, torch.zeros_like(delta))
        assert loss_at(target, batch, delta) > max(clean, loss_at(target, batch, noise))


def test_attack_lowers_accuracy_and_zero_eps_changes_nothing():
    torch.manual_seed(0)
    model = tiny_classifier("bert", num_labels=2)
    batches = [make_batch(s, batch=8, num_labels=2) for s in range(4)]
    # Make the gold labels the model's own predictions: clean accuracy 1, so any drop is the attack's.
    for b in batches:
        with torch.no_grad():
            b["labels"] = classification_forward(model.eval(), b).logits.argmax(-1)
    model.train()
    task = task_from("sst2")
    clean = evaluate(model, classification_forward, batches, task)
    assert clean["accuracy"] == 1.0 and "attack_accuracy" not in clean
    none = evaluate(model, classification_forward, batches, task, AttackConfig(eps=0.0))
    assert none["attack_accuracy"] == 1.0
    attacked = evaluate(model, classification_forward, batches, task, AttackConfig(eps=0.5, steps=5))
    assert attacked["attack_accuracy"] < 0.5 and attacked["accuracy"] == 1.0
    assert model.training  # evaluate restores the mode it found


def test_predictions_collect_every_batch_in_order():
    model = tiny_classifier("bert").eval()
    batches = [make_batch(s) for s in range(3)]
    logits, gold = predictions(model, classification_forward, batches)
    assert logits.shape == (12, 3) and list(gold) == [int(x) for b in batches for x in b["labels"]]


def test_task_names_a_fine_tuning_preset_as_well_as_a_glue_one(tmp_path):
    """`--task wnut17` is the task `--config wnut17` fine-tunes (its tags in order), `--task squad_v1` the v1.1
    reader's; a GLUE name is still the GLUE task, and an unknown name a generic task to describe."""
    tagger = resolve_task("wnut17", tmp_path)
    assert tagger.type == "token_classification" and tagger.labels[:2] == ["O", "B-corporation"]
    reader = resolve_task("squad_v1", tmp_path)
    assert reader.type == "question_answering" and reader.version == "v1.1"
    mnli = resolve_task("mnli", tmp_path)
    assert mnli.labels == ["entailment", "neutral", "contradiction"]
    with pytest.raises(UserError, match="a generic task needs"):
        resolve_task("sst3", tmp_path)
