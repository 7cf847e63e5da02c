"""Whether delta exists in the precision the model runs in (alum/adversarial/target.py `effective`, base's
report and warning): bfloat16 and float16, under autocast with float32 weights and with the weights
themselves in half precision, for every method at its defaults, with fresh and with shared dropout masks.

What can be guaranteed, and why (docs/decomposition.md has the sweep on the real MiniLM):
- What reaches the model: rounding moves each coordinate of x + delta by at most one unit in the last place
  (ulp) of the site's activations, so the change the model receives differs from delta by at most ||ulp(x)||
  and its cosine to delta is at least sqrt(1 - (||ulp(x)|| / ||delta||)^2). At the defaults delta is several
  ulps per coordinate: the cosine measured here is >= 0.98, and the arithmetic's bound is checked.
- Where it points: the ascent differentiates the model at x + start; in bf16 (8 significant bits) every layer
  rounds by up to 2^-8, which at the smoothness methods' start of 1e-2 (a few ulps of the embedding output)
  leaves the direction only roughly right with shared masks or no dropout (a cosine >= 0.7 to float64 is
  asserted: measured 0.75-0.94 here, 0.82-0.89 on MiniLM); fp16's 11 bits leave it right (>= 0.95 asserted
  here; 0.93-1.0 on MiniLM). With fresh masks, the two passes' disagreement drives the ascent and float64
  draws the same masks: >= 0.95.
Float16 runs at the loss scale an fp16 loop lends (2^16, the first dynamic scale of DeepSpeed and torch.amp):
without it, the ascent gradient of a batch-mean KL underflows float16 to exactly 0.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import pytest
import torch

from alum.adversarial import METHODS, Target, build_method
from alum.adversarial import functional as AF
from support.models import classification_forward, make_batch, tiny_classifier

PERTURBING = sorted(m for m in METHODS if METHODS[m].perturbs)
PRECISIONS = {  # name: (weights dtype, autocast dtype or None)
    "bf16-autocast": (torch.float32, torch.bfloat16),
    "fp16-autocast": (torch.float32, torch.float16),
    "bf16-weights": (torch.bfloat16, None),
    "fp16-weights": (torch.float16, None),
}
FP16_LOSS_SCALE = 2.0 ** 16


class ScaledBackward:
    """A loop's backward at a loss scale (applied to parameters' gradients, which nothing steps)."""

    def __init__(self, scale: float):
        self.scale = scale

    def backward(self, loss):
        (loss * self.scale).backward()

    def optimizer_step(self):
        pass

    def loss_scale(self):
        return self.scale


def mask_variants(name: str) -> list[str]:
    """The method's own masks ("default"), and the other setting where it has a `share_dropout` option."""
    config = METHODS[name].Config()
    return ["default", "flipped"] if hasattr(config, "share_dropout") else ["default"]


def options(name: str, masks: str) -> dict:
    if masks == "default":
        return {}
    return {"share_dropout": not METHODS[name].Config().share_dropout}


def step(model, name: str, opts: dict, precision: str | None, device: str = "cpu", seed: int = 3):
    """One step of the method from a fixed random state; its delta (float64) and report."""
    target = Target(model, classification_forward)
    method = build_method(name, opts)
    method.setup(target, total_updates=10)
    autocast = PRECISIONS[precision][1] if precision else None
    batch = {k: v.to(device) for k, v in make_batch(3).items()}
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed(seed)
    scale = FP16_LOSS_SCALE if precision and "fp16" in precision else 1.0
    with torch.autocast(device, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        report = method.step(target, batch, ScaledBackward(scale))
    real = batch["attention_mask"].unsqueeze(-1).double()
    return method.last_delta.double() * real, report


def cosine(a, b) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


def models(family: str, precision: str, train: bool, device: str = "cpu"):
    base = tiny_classifier(family).train(train).to(device)
    return base.to(PRECISIONS[precision][0]), copy.deepcopy(base).double()


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name,masks", [(n, m) for n in PERTURBING for m in mask_variants(n)])
def test_delta_reaches_a_half_precision_model_and_points_where_float64s_does(name, masks, precision, family):
    model, wide = models(family, precision, train=True)
    opts = options(name, masks)
    delta, report = step(model, name, opts, precision)
    reference, _ = step(wide, name, opts, None)
    assert report.delta_lost < 0.05, "most tokens must receive their delta"
    assert report.delta_cosine >= 0.98, "the change the model received must be delta, not its rounding"
    shares = getattr(METHODS[name].Config(), "share_dropout", False) != (masks == "flipped")
    fresh_masks_drive_it = name in ("alum", "smart") and not shares
    floor = 0.95 if precision.startswith("fp16") or fresh_masks_drive_it else 0.7
    assert cosine(delta, reference) >= floor


def test_effective_delta_is_what_the_rounding_lets_through():
    """`effective` against the arithmetic: x near 1 in bfloat16 moves in steps of 2^-7 (2^-8 just below 1), so
    an addition of 1e-4 changes nothing and one of 0.05 arrives within one step of itself; float32 keeps
    both. Under autocast the site's float32 output is rounded by the next layer's cast; with bf16 weights
    the addition itself rounds."""
    model = tiny_classifier("bert").eval()
    target = Target(model, classification_forward)
    batch = make_batch(1)
    shape = target.perturbation.shape(batch["input_ids"], "embeddings")
    for size in (1e-4, 5e-2):
        delta = torch.full(shape, size)
        for weights, autocast in ((torch.float32, None), (torch.float32, torch.bfloat16), (torch.bfloat16, None)):
            model.to(weights)
            with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None), \
                    target.perturbation.applied(delta, "embeddings"):
                target(batch)
            effective = target.perturbation.effective(delta, "embeddings")
            if weights == torch.float32 and autocast is None:
                torch.testing.assert_close(effective, delta, rtol=1e-3, atol=1e-6)  # float32's 2^-24 of x ~ 1
            elif size == 1e-4:
                assert (effective == 0).float().mean() > 0.9  # below half a bf16 step nearly everywhere
            else:
                x = target.perturbation._seen["embeddings"][0].float()
                reach = x.abs() + delta  # the larger of |x| and |x + delta| sets the rounding step
                ulp = 2.0 ** (torch.floor(torch.log2(reach)) - 7)
                assert ((effective - delta).abs() <= ulp * 1.0001).all()
                bound = (1 - (ulp.norm() / delta.norm()) ** 2).sqrt()
                stats = AF.effective_stats(effective, delta, torch.ones(*shape[:2], 1))
                assert stats[2] >= float(bound) > 0.9
        model.float()


@contextlib.contextmanager
def captured_warnings():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("alum")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_delta_that_rounds_away_is_said_once_naming_the_options():
    """The papers' sizes in bf16 with shared masks: the ascent sees no difference, delta is 0 or rounding."""
    model = tiny_classifier("bert").train().bfloat16()
    released = {"constraint": "gradient", "sigma": 1e-5, "step_size": 1e-3, "share_dropout": True}
    target = Target(model, classification_forward)
    method = build_method("alum", released)
    method.setup(target, total_updates=10)
    with captured_warnings() as records:
        for seed in range(3):
            report = method.step(target, make_batch(seed), ScaledBackward(1.0))
    assert report.delta_cosine < 0.5
    assert len(records) == 1
    message = records[0].getMessage()
    assert "bfloat16" in message and "adversarial.options.alum.step_size" in message and "\n" not in message


def test_no_word_where_delta_arrives_or_is_zero_by_choice():
    model = tiny_classifier("bert").train().bfloat16()
    target = Target(model, classification_forward)
    with captured_warnings() as records:
        for opts in ({}, {"step_size": 0.0, "constraint": "gradient", "share_dropout": False}):
            method = build_method("smart", opts)
            method.setup(target, total_updates=10)
            report = method.step(target, make_batch(0), ScaledBackward(1.0))
    assert records == []
    assert report.delta_norm == 0 and report.delta_effective is None  # step_size 0: nothing intended, none measured


def test_a_zero_delta_by_choice_pays_for_no_ascent():
    """smart with step_size 0 under the released rule: delta is exactly 0 whatever the gradient, so the step
    runs the clean pass, the teacher and the adversarial pass only (three forwards, not four)."""
    model = tiny_classifier("bert").train()
    calls = {"n": 0}

    def counting(m, b):
        calls["n"] += m is model
        return classification_forward(m, b)

    target = Target(model, counting)
    for step_size, student_forwards in ((0.0, 2), (1e-3, 3)):
        calls["n"] = 0
        method = build_method("smart", {"step_size": step_size, "constraint": "gradient", "share_dropout": False})
        method.setup(target, total_updates=10)
        method.step(target, make_batch(0), ScaledBackward(1.0))
        assert calls["n"] == student_forwards


def test_a_term_weighted_zero_pays_for_none_of_its_passes():
    """alpha = 0 (SMART's Bregman term alone, the decomposition's `smart-teacher` arm): the smoothness term would
    move no gradient, so neither its ascent nor its adversarial pass runs; the step backwards the task loss plus
    mu times the symmetric KL to the teacher, computed here independently."""
    model = tiny_classifier("bert")
    calls = {"n": 0}

    def counting(m, b):
        calls["n"] += m is model
        return classification_forward(m, b)

    target = Target(model, counting)
    method = build_method("smart", {"alpha": 0.0, "mu": 2.0})
    method.setup(target, total_updates=10)
    losses = []

    class Recording(ScaledBackward):
        def backward(self, loss):
            losses.append(loss.detach())

    batch = make_batch(0)
    method.step(target, batch, Recording(1.0))  # the teacher is born here, equal to the student
    with torch.no_grad():
        for p in method.teacher.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()  # deterministic passes, so the independent computation sees the same logits
    calls["n"] = 0
    report = method.step(target, batch, Recording(1.0))
    assert calls["n"] == 1 and report.adv_loss is None and report.delta_norm is None and not report.skipped
    with torch.no_grad():
        clean = classification_forward(model, batch)
        log_p = torch.log_softmax(clean.logits.double(), -1)
        log_q = torch.log_softmax(classification_forward(method.teacher.model.eval(), batch).logits.double(), -1)
        bregman = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(-1).mean()  # KL(p||q) + KL(q||p)
    expected = clean.loss.double() + 2.0 * bregman
    assert bregman > 1e-4  # the teacher moved: the term is not 0
    torch.testing.assert_close(losses[-1].double(), expected, rtol=1e-5, atol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16-autocast", "fp16-autocast"])
@pytest.mark.parametrize("name", PERTURBING)
def test_on_cuda_delta_reaches_the_model_and_points_where_float64s_does(name, precision):
    """The CUDA dropout and attention kernels: masks drawn in another dtype need not match, so the float64
    comparison runs without dropout; in train mode delta must still reach the model."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model, wide = models("bert", precision, train=False, device="cuda")
    delta, report = step(model, name, {}, precision, device="cuda")
    reference, _ = step(wide, name, {}, None, device="cuda")
    assert report.delta_lost < 0.05 and report.delta_cosine >= 0.98
    assert cosine(delta, reference) >= (0.95 if precision.startswith("fp16") else 0.7)
    model.train()
    _, report = step(model, name, {}, precision, device="cuda")
    assert report.delta_lost < 0.05 and report.delta_cosine >= 0.98
