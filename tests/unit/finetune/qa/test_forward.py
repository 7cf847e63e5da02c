"""The QA forward (finetune/qa/forward.py): start and end distributions as (2B, T) rows over the positions an
answer can take, masked by a finite value; the core's divergences on them equal an independent
per-distribution computation; the loss is HF's mean of start and end cross-entropies; every core method
trains a tiny BertForQuestionAnswering for one update."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from alum.adversarial import METHODS, Target, build_method
from alum.adversarial import functional as AF
from alum.finetune.qa.features import encode
from alum.finetune.qa.forward import qa_forward
from alum.training.head_forwards import MASKED, span_logits
from alum.finetune.qa.reading import read
from support.qa import SQUAD_V2_DEV, tiny_qa_model, tiny_tokenizer
from support.trainers import RecordingTrainer

pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def windows():
    tok = tiny_tokenizer("wordpiece")
    examples = read(SQUAD_V2_DEV).examples[:12]
    return tok, encode(examples, tok, max_length=64, stride=16, max_query_length=16, training=True)


def batch(n: int = 6) -> dict[str, torch.Tensor]:
    """`n` windows, some holding their answer and some pointing at CLS; the last ones end in padding."""
    _, feats = windows()
    answered = [w for w in range(len(feats)) if feats.start_positions[w] != feats.cls_index[w]][: n // 2]
    at_cls = [w for w in range(len(feats)) if feats.start_positions[w] == feats.cls_index[w]][: n - len(answered)]
    return feats.tensors(answered + at_cls)


def allowed(b):
    return b["span_mask"].bool()


def test_rows_are_start_then_end_masked_outside_the_context_in_float32():
    b = batch()
    start, end = torch.randn(b["input_ids"].shape).bfloat16(), torch.randn(b["input_ids"].shape).bfloat16()
    rows = span_logits(start, end, b["span_mask"])
    n = start.shape[0]
    assert rows.dtype == torch.float32 and rows.shape == (2 * n, start.shape[1])
    m = allowed(b)
    assert torch.equal(rows[:n][m], start.float()[m]) and torch.equal(rows[n:][m], end.float()[m])
    assert (rows[:n][~m] == MASKED).all() and (rows[n:][~m] == MASKED).all()
    # padding and the question are masked; CLS (position 0) is not
    assert not m[b["attention_mask"] == 0].any() and m[:, 0].all()
    assert not m[b["token_type_ids"] == 0][1:].all()


def _independent_kl(p_rows: list[torch.Tensor], q_rows: list[torch.Tensor]) -> torch.Tensor:
    """KL(p || q) per distribution over its allowed positions only, in float64, averaged over distributions."""
    out = []
    for p, q in zip(p_rows, q_rows):
        lp, lq = torch.log_softmax(p.double(), -1), torch.log_softmax(q.double(), -1)
        out.append((lp.exp() * (lp - lq)).sum())
    return torch.stack(out).mean()


def test_divergences_equal_an_independent_per_distribution_computation():
    b = batch()
    model = tiny_qa_model(tiny_tokenizer("wordpiece")).eval()
    a = qa_forward(model, b)
    other = tiny_qa_model(tiny_tokenizer("wordpiece"), seed=1).eval()
    c = qa_forward(other, b)
    m = allowed(b)
    with torch.no_grad():
        raw_a, raw_c = model(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}), \
            other(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    rows = lambda out: [out.start_logits[i][m[i]] for i in range(len(m))] + [out.end_logits[i][m[i]] for i in range(len(m))]  # noqa: E731
    kl_ac, kl_ca = _independent_kl(rows(raw_a), rows(raw_c)), _independent_kl(rows(raw_c), rows(raw_a))
    assert kl_ac > 1e-3  # two different models: a real divergence to compare
    tol = dict(rtol=1e-5, atol=1e-7)  # float32 sums of ~100 terms of size ~1e-2 against float64
    div = Target(model, qa_forward).divergence
    torch.testing.assert_close(AF.kl(a.logits, c.logits).double(), kl_ac, **tol)
    torch.testing.assert_close(div.moving_from_fixed(a, c).double(), kl_ac, **tol)
    torch.testing.assert_close(div.moving_to_fixed(a, c).double(), kl_ac, **tol)
    torch.testing.assert_close(div.symmetric(a, c).double(), kl_ac + kl_ca, **tol)
    torch.testing.assert_close(div.mutual(a, c).double(), (kl_ac + kl_ca) / 2, **tol)


def test_gradients_are_finite_and_zero_at_masked_positions():
    b = batch()
    start = torch.randn(b["input_ids"].shape, requires_grad=True)
    end = torch.randn(b["input_ids"].shape, requires_grad=True)
    a = span_logits(start, end, b["span_mask"])
    c = span_logits(torch.randn_like(start), torch.randn_like(end), b["span_mask"])
    AF.symmetric_kl(a, c).backward()
    assert torch.isfinite(start.grad).all() and torch.isfinite(end.grad).all()
    m = allowed(b)
    assert (start.grad[~m] == 0).all() and (start.grad[m] != 0).any()
    # the reason for a finite mask: with -inf, 0 * (-inf - -inf) makes the KL NaN
    inf = a.detach().masked_fill(a.detach() == MASKED, float("-inf"))
    assert torch.isnan(AF.kl(inf, inf))


def test_the_loss_is_the_mean_of_start_and_end_cross_entropies():
    b = batch()
    model = tiny_qa_model(tiny_tokenizer("wordpiece")).eval()
    out = qa_forward(model, b)
    raw = model(**{k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    m = allowed(b)
    masked = lambda x: x.float().masked_fill(~m, MASKED)  # noqa: E731
    expected = (F.cross_entropy(masked(raw.start_logits), b["start_positions"])
                + F.cross_entropy(masked(raw.end_logits), b["end_positions"])) / 2
    torch.testing.assert_close(out.loss, expected)
    assert qa_forward(model, {k: v for k, v in b.items() if "positions" not in k}).loss is None


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_core_method_trains_the_qa_head_for_one_update(name):
    model = tiny_qa_model(tiny_tokenizer("wordpiece")).train()
    target = Target(model, qa_forward)
    method = build_method(name)
    method.setup(target, total_updates=4)
    trainer = RecordingTrainer(model, lr=0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    report = method.step(target, batch(), trainer)
    if method.optimizer_steps == 0:
        trainer.optimizer_step()
    method.on_optimizer_step(target, 1)
    assert report.skipped == 0 and report.loss is not None and torch.isfinite(torch.tensor(report.loss))
    if name != "none":
        assert report.adv_loss is not None and torch.isfinite(torch.tensor(report.adv_loss))
    assert not torch.equal(before["qa_outputs.weight"], model.qa_outputs.weight)
    assert all(torch.isfinite(p).all() for p in model.parameters())
