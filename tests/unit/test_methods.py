"""Behaviour of every method in the perturbation core, on tiny random encoders."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import METHODS, Target, build_method
from alum.adversarial import functional as AF
from alum.errors import UserError
from conftest import (
    FAMILIES,
    RecordingTrainer,
    classification_forward,
    make_batch,
    mlm_forward,
    tiny_classifier,
    tiny_mlm,
)

ADVERSARIAL = [m for m in METHODS if m != "none"]
SINGLE_PASS = ["none", "fgsm", "fgm", "pgd", "vat", "alum", "smart"]


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
# rules are pinned in test_smoothness_math.py.
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


@pytest.mark.parametrize("family", FAMILIES)
def test_delta_enters_once_at_the_site_asked_for(family):
    """"words": the word-embedding output moves by delta; "embeddings": the embedding block's output does."""
    model = tiny_classifier(family).eval()
    target = Target(model, classification_forward)
    batch = make_batch(4)
    sites = {"words": target.perturbation.embedding, "embeddings": target.perturbation.block}

    def observed() -> dict:  # hooks registered last see what the next module receives
        seen = {}
        hooks = [m.register_forward_hook(lambda mod, i, o, key=key: seen.__setitem__(key, o[0] if isinstance(o, tuple) else o))
                 for key, m in sites.items()]
        target(batch)
        for h in hooks:
            h.remove()
        return seen

    clean = observed()
    for site in sites:
        delta = torch.randn(target.perturbation.shape(batch["input_ids"], site))
        with target.perturbation.applied(delta, site):
            seen = observed()
        torch.testing.assert_close(seen[site], clean[site] + delta)
        if site == "embeddings":  # the words were left alone: delta entered once
            torch.testing.assert_close(seen["words"], clean["words"])


def test_smoothness_methods_perturb_the_embedding_output_by_default():
    assert build_method("alum").site == build_method("smart").site == "embeddings"
    assert build_method("fgm").site == build_method("alum", {"site": "words"}).site == "words"
    with pytest.raises(UserError, match="alum.site"):
        build_method("alum", {"site": "layer3"})


@pytest.mark.parametrize("name", ["none", "fgsm", "fgm", "pgd", "vat", "alum", "smart"])
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


@pytest.mark.parametrize("name,passes", [("freelb", 3), ("yopo", 3), ("freeat", 3)])
def test_multi_pass_methods_declare_their_passes(name, passes):
    model = tiny_classifier("bert")
    target = Target(model, classification_forward)
    method = build_method(name)
    trainer = RecordingTrainer(model)
    method.step(target, make_batch(2), trainer)
    assert trainer.backwards == method.backward_passes == passes
    assert trainer.steps == method.optimizer_steps


def test_freelb_gradient_is_the_average_of_the_per_pass_gradients():
    model = tiny_classifier("bert").eval()
    target = Target(model, classification_forward)
    method = build_method("freelb", {"steps": 3, "step_size": 0.5, "max_norm": 0.8})
    batch = make_batch(4)
    used = []
    forward = method.clean_forward

    def recording(target, batch, delta=None):
        used.append(delta.detach().clone())
        return forward(target, batch, delta)

    method.clean_forward = recording
    method.step(target, batch, RecordingTrainer(model))
    got = {n: p.grad.clone() for n, p in model.named_parameters()}

    assert len(used) == 3 and not torch.equal(used[0], used[2])
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for delta in used:  # by hand: one full backward per pass at that pass's delta
        model.zero_grad(set_to_none=True)
        with target.perturbation.applied(delta):
            target(batch).loss.backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad / 3
    for n in got:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-7, msg=f"{n}")
    assert AF.norm(used[2], "l2", "example").max() <= 0.8 + 1e-5


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


def test_unknown_method_and_unknown_option_are_one_line_errors():
    with pytest.raises(UserError, match="unknown method 'almu'"):
        build_method("almu")
    with pytest.raises(UserError, match="unknown key 'alum.alpah'.*did you mean 'alpha'"):
        build_method("alum", {"alpah": 1.0})
    with pytest.raises(UserError, match="'pgd.steps' expects int"):
        build_method("pgd", {"steps": "many"})
    with pytest.raises(UserError, match=r"adversarial.options.none: method 'none' takes no options"):
        build_method("none", {"alpha": 10.0}, prefix="adversarial.options.none.")


def test_supervised_method_without_labels_is_a_clear_error():
    model = tiny_classifier("bert")
    batch = make_batch(0)
    del batch["labels"]
    with pytest.raises(UserError, match="needs labels"):
        build_method("fgm").step(Target(model, classification_forward), batch, RecordingTrainer(model))


def test_forward_output_computes_log_probs_and_loss_once():
    calls = {"n": 0}

    def loss_fn(out):
        calls["n"] += 1
        return -out.log_probs[:, 0].mean()

    from alum.adversarial import ForwardOutput

    out = ForwardOutput(torch.randn(4, 5), loss_fn=loss_fn)
    assert out.log_probs is out.log_probs
    assert out.loss is out.loss and calls["n"] == 1
