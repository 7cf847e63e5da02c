"""The math of the label-free methods (VAT, ALUM, SMART), each pinned against an independent computation
written here with plain torch: the ascent objective and its direction, the update rule, every term of the
loss and which side of each KL carries gradient, shared dropout masks; where they perturb by default. The
teacher's birth and schedule are in test_teacher.py."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from alum.adversarial import Target, build_method
from alum.adversarial import functional as AF
from alum.errors import UserError
from support.models import TASKS, classification_forward, make_batch, setup
from support.reference import real_tokens
from support.trainers import RecordingTrainer


@contextlib.contextmanager
def added_at(module, delta, detach: bool):
    """delta added to `module`'s output, the output cut from the graph first if `detach`."""
    handle = module.register_forward_hook(lambda _m, _i, out: (out.detach() if detach else out) + delta)
    try:
        yield
    finally:
        handle.remove()


def kl(target_logits, input_logits):
    """KL(softmax(target) || softmax(input)), averaged over rows, as torch computes it."""
    wide = torch.float64 if input_logits.dtype == torch.float64 else torch.float32
    return F.kl_div(F.log_softmax(input_logits.to(wide), -1), F.softmax(target_logits.to(wide), -1), reduction="batchmean")


def run_step(method, model, forward, batch, seed=11, apply=True, loss_scale=1.0):
    target = Target(model, forward)
    method.setup(target, total_updates=10)
    trainer = RecordingTrainer(model, apply=apply, lr=0.0)
    trainer.loss_scale = lambda: loss_scale  # what an fp16 loop lends
    torch.manual_seed(seed)
    report = method.step(target, batch, trainer)
    return report, trainer


# ---- ALUM: the released code's ascent and update rule (mt-dnn 4b92661, alum/adv_masked_lm.py) ----

RULES = {  # the three update rules, written out from their references (functional.ascent_step cites them)
    "gradient": lambda noise, g, eta, eps: eta * g / (linf(g) + 1e-6),
    "normalize": lambda noise, g, eta, eps: (noise + eta * g) / (linf(noise + eta * g) + 1e-6),
    "project": lambda noise, g, eta, eps: (noise + eta * g / (linf(g) + 1e-12)).clamp(-eps, eps),
}


def linf(x):
    return x.abs().amax(-1, keepdim=True)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("sigma", [1e-5, 1.0])  # the published size (the 1e-6 guard matters), and a large one
@pytest.mark.parametrize("constraint", RULES)
def test_alum_delta_follows_its_update_rule(task, sigma, constraint):
    """g = d/d noise of KL(clean || adv) averaged over rows (`kl_div(..., 'batchmean')` in the released
    code), at a N(0, sigma^2) start added to the embedding block's output; then the rule. sigma=1 tells the
    KL's direction apart (the two directions agree to first order only); sigma=1e-5 tells mean from sum
    (g is then near the 1e-6 guard of the gradient rule). In float64: at sigma=1e-5 in eval mode, float32
    leaves g at the level of rounding (the clean and noised passes differ by 1e-5 of their size)."""
    model, forward, batch = setup(task, float64=True)
    eta, eps = 1e-3, 0.3
    method = build_method("alum", {"sigma": sigma, "constraint": constraint, "eps": eps, "step_size": eta})
    run_step(method, model, forward, batch, apply=False)

    mask = real_tokens(batch)
    with torch.no_grad():
        clean = forward(model, batch).logits
    torch.manual_seed(11)
    noise = (torch.randn(*batch["input_ids"].shape, 32) * sigma * mask).double().requires_grad_()
    with added_at(model.bert.embeddings, noise, detach=True):
        adv = forward(model, batch).logits
    (g,) = torch.autograd.grad(kl(clean, adv), noise)
    expected = RULES[constraint](noise.detach(), g, eta, eps) * mask
    scale = float(expected.abs().max())
    torch.testing.assert_close(method.last_delta.double(), expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("detach", [True, False])
def test_alum_loss_and_every_gradient(task, detach):
    """The loss handed to backward is CE + alpha * (KL(sg(clean) || adv) + KL(sg(adv) || clean)), with the
    adversarial pass cut below the embedding output when `detach_embeddings` (the released code), and
    every parameter's gradient is that loss's."""
    model, forward, batch = setup(task)
    method = build_method("alum", {"alpha": 3.0, "detach_embeddings": detach, "constraint": "project", "eps": 0.5,
                                   "step_size": 0.5})
    report, trainer = run_step(method, model, forward, batch)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    clean = forward(model, batch)
    with added_at(model.bert.embeddings, method.last_delta, detach):
        adv = forward(model, batch)
    expected = clean.loss + 3.0 * (kl(clean.logits.detach(), adv.logits) + kl(adv.logits.detach(), clean.logits))
    expected.backward()
    assert trainer.backwards == 1
    assert trainer.losses[0] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert report.loss == pytest.approx(float(clean.loss), rel=1e-6)
    assert set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_alum_ascent_is_unscaled_under_fp16_loss_scaling():
    model, forward, batch = setup("mlm")
    plain = build_method("alum")
    run_step(plain, model, forward, batch, apply=False)
    scaled = build_method("alum")
    run_step(scaled, model, forward, batch, apply=False, loss_scale=1024.0)
    torch.testing.assert_close(scaled.last_delta, plain.last_delta, rtol=1e-4, atol=1e-10)


# ---- the other two update rules, through the method ----

def test_normalize_rule_gives_unit_linf_norm_per_token():
    model, forward, batch = setup("classification")
    method = build_method("alum", {"constraint": "normalize"})
    run_step(method, model, forward, batch)
    norms = AF.norm(method.last_delta, "linf", "token").squeeze(-1)
    real = batch["attention_mask"].bool()
    # 1 up to the 1e-6 guard, which is not negligible next to sigma = 1e-5 noise (as in the released code)
    assert norms[real].max() <= 1 and norms[real].min() > 0.9
    assert norms[~real].abs().max() == 0


def test_normalize_rule_with_published_sizes_is_the_normalised_random_start():
    """What mt-dnn f0b40b6/cceaa00 do with sigma=1e-5, eta=1e-3: eta * g, g averaged over rows, is far
    below the noise, so delta is the random start rescaled to unit l-inf norm per token."""
    model, forward, batch = setup("mlm")
    method = build_method("alum", {"constraint": "normalize", "sigma": 1e-5, "step_size": 1e-3})
    run_step(method, model, forward, batch, apply=False)
    torch.manual_seed(11)
    start = torch.randn(*batch["input_ids"].shape, 32) * 1e-5 * real_tokens(batch)
    expected = AF.normalize(start, "linf", "token") * real_tokens(batch)
    torch.testing.assert_close(method.last_delta, expected, atol=1e-3, rtol=0)


# ---- SMART ----

def test_smart_loss_has_every_term_against_a_moved_teacher():
    """CE + alpha * symKL(clean, adv) + mu * (KL(student || sg(teacher)) + KL(sg(teacher) || student))."""
    model, forward, batch = setup("classification")
    method = build_method("smart", {"alpha": 2.0, "mu": 3.0, "constraint": "project", "eps": 0.5, "step_size": 0.5})
    target = Target(model, forward)
    method.setup(target, total_updates=10)
    method.teacher = method.new_teacher()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in method.teacher.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    trainer = RecordingTrainer(model, lr=0.0)
    torch.manual_seed(11)
    method.step(target, batch, trainer)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    clean = forward(model, batch)
    with added_at(model.bert.embeddings, method.last_delta, detach=True):
        adv = forward(model, batch)
    with torch.no_grad():
        anchor = forward(method.teacher.model, batch).logits
    smooth = kl(clean.logits.detach(), adv.logits) + kl(adv.logits.detach(), clean.logits)
    proximal = kl(clean.logits, anchor) + kl(anchor, clean.logits)
    assert float(proximal) > 1e-4  # the teacher really differs
    expected = clean.loss + 2.0 * smooth + 3.0 * proximal
    expected.backward()
    assert trainer.losses[0] == pytest.approx(float(expected), rel=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_smart_proximal_term_is_zero_while_teacher_equals_student_even_with_dropout():
    """The teacher runs in the student's mode under the clean pass's dropout masks: at equal weights the
    Bregman term is exactly zero (an eval-mode teacher beside a train-mode student is not)."""
    model, forward, batch = setup("classification", train=True)
    method = build_method("smart", {"alpha": 0.0, "mu": 5.0})
    report, trainer = run_step(method, model, forward, batch, apply=False)
    assert trainer.losses[0] == pytest.approx(report.loss, abs=1e-6)


# ---- VAT ----

def vat_reference_delta(model, batch, seed, xi, eps):
    """One power-iteration step in float64 from the same random probe."""
    model = copy.deepcopy(model).double()
    embeddings = model.get_input_embeddings()
    mask = real_tokens(batch).double()
    torch.manual_seed(seed)
    probe = torch.randn(*batch["input_ids"].shape, 32).double() * mask
    probe = (xi * probe / probe.flatten(1).norm(dim=1)[:, None, None]).requires_grad_()
    with torch.no_grad():
        clean = classification_forward(model, batch).logits
    with added_at(embeddings, probe, detach=False):
        out = classification_forward(model, batch).logits
    loss = F.kl_div(F.log_softmax(out, -1), F.softmax(clean, -1), reduction="sum")
    (g,) = torch.autograd.grad(loss, probe)
    return eps * g / g.flatten(1).norm(dim=1)[:, None, None]


def cosines(a, b):
    return F.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=1)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vat_direction_matches_float64_at_the_default_probe(precision):
    """At the old xi = 1e-6 the float32 ascent gradient was zero or pointed elsewhere (cosine 0.08-0.73 to
    this reference); the default must give the float64 direction in float32 and bf16."""
    model, forward, batch = setup("classification")
    xi = build_method("vat").config.xi
    worst = []
    for seed in range(4):
        method = build_method("vat")
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        with autocast:
            run_step(method, model, forward, make_batch(seed), seed=seed, apply=False)
        reference = vat_reference_delta(model, make_batch(seed), seed, xi, eps=1.0)
        worst.append(float(cosines(method.last_delta, reference).min()))
    assert min(worst) > (0.999 if precision == "fp32" else 0.98), worst


def test_vat_old_probe_size_loses_the_direction():
    """Why the default changed: in float32 a probe of 1e-6 is below the logits' resolution."""
    model, forward, batch = setup("classification")
    method = build_method("vat", {"xi": 1e-6})
    run_step(method, model, forward, batch, seed=0, apply=False)
    reference = vat_reference_delta(model, batch, 0, 1e-6, eps=1.0)
    assert float(cosines(method.last_delta, reference).min()) < 0.9


def test_vat_loss_is_kl_of_clean_to_adversarial_with_delta_of_radius_eps():
    model, forward, batch = setup("classification")
    method = build_method("vat", {"eps": 0.7, "alpha": 2.5})
    report, trainer = run_step(method, model, forward, batch)
    delta = method.last_delta
    torch.testing.assert_close(delta.flatten(1).norm(dim=1), torch.full((4,), 0.7), rtol=1e-5, atol=0)
    assert delta[batch["attention_mask"] == 0].abs().max() == 0
    with torch.no_grad():
        clean = forward(model, batch)
        with added_at(model.get_input_embeddings(), delta, detach=False):
            adv = forward(model, batch)
    expected = clean.loss + 2.5 * kl(clean.logits, adv.logits)
    assert trainer.losses[0] == pytest.approx(float(expected), rel=1e-5)
    assert report.adv_loss == pytest.approx(float(kl(clean.logits, adv.logits)), rel=1e-4)


# ---- shared dropout masks ----

@pytest.mark.parametrize("share", [True, False])
def test_alum_shared_dropout_replays_the_clean_masks(share):
    """In train mode from sigma = 0, shared masks make every pass equal the clean one, so the ascent
    gradient and delta are exactly zero; with fresh masks (the released code) the passes differ and delta
    is a full eta-sized step driven by the masks' disagreement alone."""
    model, forward, batch = setup("mlm", train=True)
    outputs = []

    def recording(m, b):
        out = forward(m, b)
        outputs.append(out.logits.detach().clone())
        return out

    method = build_method("alum", {"sigma": 0.0, "share_dropout": share})
    run_step(method, model, recording, batch, apply=False)
    assert len(outputs) == 3
    same = [torch.equal(outputs[0], o) for o in outputs[1:]]
    assert same == ([True, True] if share else [False, False])
    size = float(AF.norm(method.last_delta, "linf", "token").max())
    assert size == 0 if share else size > 0.5e-3


@pytest.mark.parametrize("name", ["alum", "smart"])
def test_a_zero_delta_with_shared_masks_is_refused(name):
    """delta exactly 0 and the clean pass's masks replayed: the perturbed pass is the clean pass, the term 0.
    Refused at build, naming the option; the two ways out (fresh masks, no term) are accepted."""
    for zero in ({"step_size": 0.0, "sigma": 0.0}, {"step_size": 0.0, "constraint": "gradient"}):
        with pytest.raises(UserError, match=f"{name}.share_dropout|share_dropout=false"):
            build_method(name, {**zero, "share_dropout": True})
        assert build_method(name, {**zero, "share_dropout": False}).delta_is_zero
        assert build_method(name, {**zero, "share_dropout": True, "alpha": 0.0}).delta_is_zero
    assert not build_method(name, {"step_size": 0.0}).delta_is_zero  # project keeps its random start


# ---- where they perturb ----

def test_smoothness_methods_perturb_the_embedding_output_by_default():
    assert build_method("alum").site == build_method("smart").site == "embeddings"
    assert build_method("fgm").site == build_method("alum", {"site": "words"}).site == "words"
    with pytest.raises(UserError, match="alum.site"):
        build_method("alum", {"site": "layer3"})
