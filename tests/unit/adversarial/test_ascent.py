"""The one ascent loop (alum/adversarial/ascent.py) as every method runs it: the delta it reaches beats a
random one of its size, and a projected climb stays in its ball."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import METHODS, Target, build_method
from alum.adversarial import functional as AF
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer

ADVERSARIAL = [m for m in METHODS if METHODS[m].perturbs]  # the methods with a delta


def objective(method, target, batch, delta, clean_logits):
    """What the method climbs: the task loss for supervised methods, the divergence for label-free ones."""
    with torch.no_grad(), target.perturbation.applied(delta):
        out = target(batch)
    if method.needs_labels:
        return float(out.loss)
    return float(target.divergence(clean_logits, out.logits))


def same_norm_random(delta, mask, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(delta.shape, generator=g) * mask
    return noise / AF.norm(noise, "l2", "token").clamp_min(1e-12) * AF.norm(delta, "l2", "token")


# ALUM and SMART are judged in `project` mode, where delta has a radius to compare at; their exact update
# rules are pinned in test_smoothness.py.
CLIMB_OPTIONS = {"alum": {"constraint": "project", "eps": 0.05}, "smart": {"constraint": "project", "eps": 0.05}}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_ascent_climbs_above_random_delta_of_same_norm(name):
    model = tiny_classifier("bert").eval()  # no dropout: both deltas are judged on the same function
    target = Target(model, classification_forward)
    method = build_method(name, CLIMB_OPTIONS.get(name))
    method.setup(target, total_updates=10)
    wins, trials = 0, 12
    for seed in range(trials):
        torch.manual_seed(seed)
        batch = make_batch(seed)
        method.step(target, batch, RecordingTrainer(model, apply=True, lr=0.0))
        model.zero_grad(set_to_none=True)
        delta = method.last_delta
        mask = AF.token_mask(batch["attention_mask"], delta.shape, delta.device)
        with torch.no_grad():
            clean = target(batch).logits
        attacked = objective(method, target, batch, delta, clean)
        random = objective(method, target, batch, same_norm_random(delta, mask, seed), clean)
        wins += attacked > random
    assert wins >= trials - 1, f"{name}: adversarial delta beat random in only {wins}/{trials} batches"


def test_projection_mode_keeps_delta_in_the_eps_ball():
    model = tiny_classifier("bert").eval()
    target = Target(model, classification_forward)
    for name, options, p, level in [
        ("alum", {"constraint": "project", "eps": 0.05, "steps": 3, "step_size": 1.0}, "linf", "token"),
        ("smart", {"constraint": "project", "eps": 0.05, "norm": "l2", "step_size": 1.0}, "l2", "token"),
        ("pgd", {"eps": 0.3, "step_size": 0.5, "steps": 4}, "l2", "example"),
        ("yopo", {"eps": 0.2, "step_size": 0.5}, "l2", "example"),
    ]:
        method = build_method(name, options)
        method.setup(target, total_updates=10)
        method.step(target, make_batch(6), RecordingTrainer(model, lr=0.0))
        eps = options["eps"]
        norms = AF.norm(method.last_delta, p, level)
        assert norms.max() <= eps * (1 + 1e-5), name
        assert norms.max() >= 0.5 * eps, f"{name}: delta never reached the boundary"
