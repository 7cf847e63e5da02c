"""The question-answering forward the perturbation core runs (`alum.adversarial.Target`).

A QA head predicts two distributions per window, over the positions where an answer can start and where it
can end. `ForwardOutput.logits` holds them as rows: (2B, T), the B start rows then the B end rows, so every
divergence of the core (KL, symmetric KL, R-Drop's mutual KL), which averages over rows, is the mean of the
per-distribution divergences over start and end. ALUM (Liu et al. 2020) reports SQuAD v1.1 and v2.0 with
its symmetric KL, and the issue asks the same of SMART (Jiang et al. 2020); neither paper writes out how the
start and end distributions combine, so the term is taken per distribution, as for any other head's
softmax, and averaged. The mean rather than the sum halves the term, which the weight (alpha, lambda_s)
absorbs.

Positions where no answer can be (question tokens, special tokens other than CLS, padding) are set to
MASKED (`alum.training.head_forwards`), a large negative finite number, in float32 before any softmax: they
get probability exactly 0 in both passes and so add exactly 0 to every KL, and their gradient is 0. Not
-inf: KL's p * (log p - log q) would then be 0 * (-inf - -inf) = NaN at those positions.

The task loss is the mean of the start and end cross-entropies, as HF's `...ForQuestionAnswering` heads
compute it, over the same masked rows (the gold position is always a context token or CLS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alum.adversarial.target import ForwardOutput
from alum.training.head_forwards import MODEL_INPUTS, span_logits


def qa_forward(model, batch: dict[str, torch.Tensor]) -> ForwardOutput:
    out = model(**{k: batch[k] for k in MODEL_INPUTS if k in batch})
    logits = span_logits(out.start_logits, out.end_logits, batch["span_mask"])
    if "start_positions" not in batch:
        return ForwardOutput(logits)
    gold = torch.cat([batch["start_positions"], batch["end_positions"]])

    def loss_fn(output: ForwardOutput) -> torch.Tensor:
        # nll over the 2B rows averages start and end alike: (CE_start + CE_end) / 2
        return F.nll_loss(output.log_probs, gold)

    return ForwardOutput(logits, loss_fn=loss_fn)
