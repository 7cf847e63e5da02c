"""The forwards the perturbation core runs for the heads that predict more than one distribution per example,
shared by `alum finetune` and the `transformers.Trainer` drop-in (`default_forward` picks one by the head).

A token classifier predicts a tag per token: `tag_forward` gathers the logits of the labelled positions (each
word's first sub-word; label -100 elsewhere, the `transformers` convention) into rows, (N, C), with the task
loss the mean NLL over the same rows, so every divergence of the core, which averages over rows, is taken
per word: padding, special tokens and later sub-words never enter it.

A span head predicts where an answer starts and ends: `span_logits` stacks the start and end rows, (2B, T),
with the positions no answer can take at MASKED, so every divergence is the mean over the start and end
distributions (finetune/qa/forward.py, which masks the question too, says why and how).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alum.adversarial.target import ForwardOutput

IGNORE = -100  # the label of a position that is not a word's first sub-word (transformers' ignore_index)

# exp(-1e4 - max) underflows to exactly 0 in float32 for any logit range a head produces (below about -104
# is 0), and 1e4 keeps a spacing of 1e-3 in float32, so masked values stay equal across passes. Not -inf:
# KL's p * (log p - log q) would be 0 * (-inf - -inf) = NaN at those positions.
MASKED = -1.0e4

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Forward = Callable[[nn.Module, dict[str, Any]], ForwardOutput]


def tag_forward(model: nn.Module) -> Forward:
    """forward(model, batch) -> ForwardOutput: logits at the labelled positions, (N, C), and their NLL."""
    accepted = set(inspect.signature(model.forward).parameters)
    inputs = [k for k in MODEL_INPUTS if k in accepted]

    def forward(m: nn.Module, batch: dict[str, torch.Tensor]) -> ForwardOutput:
        logits = m(**{k: batch[k] for k in inputs if k in batch}).logits  # (B, T, C)
        labels = batch.get("labels")
        if labels is None:  # no labels to say which positions are words: every non-padding position
            return ForwardOutput(logits[batch["attention_mask"].bool()])
        picked = labels != IGNORE
        targets = labels[picked]
        # Computed when first read, from the float32 log-probabilities the divergences share. A batch with no
        # labelled word (every word tokenised to nothing) has a loss of 0, not NaN, as the core's divergences do.
        return ForwardOutput(logits[picked], loss_fn=lambda out: F.nll_loss(out.log_probs, targets) if len(targets)
                             else out.logits.sum() * 0)

    return forward


def span_logits(start: torch.Tensor, end: torch.Tensor, span_mask: torch.Tensor) -> torch.Tensor:
    """(2B, T) float32: start rows then end rows, MASKED where `span_mask` is 0."""
    rows = torch.cat([start, end], dim=0).float()
    return rows.masked_fill(span_mask.repeat(2, 1) == 0, MASKED)


def span_forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> ForwardOutput:
    """A span head on a batch as `transformers`' question-answering examples prepare it (no mask of the
    question): start and end rows MASKED at padding only, and the model's own loss (the mean of its start and
    end cross-entropies)."""
    out = model(**batch)
    return ForwardOutput(span_logits(out.start_logits, out.end_logits, batch["attention_mask"]), out.get("loss"))


def own_forward(model: nn.Module, batch: dict[str, Any]) -> ForwardOutput:
    """The model's own forward and loss (its problem_type decides cross-entropy or MSE)."""
    out = model(**batch)
    return ForwardOutput(out.logits, out.get("loss"))


def default_forward(model: nn.Module) -> Forward:
    """The forward for a model's head: per labelled token for a token classifier, per start and end
    distribution for a span head, the model's own for one prediction per example. By the class name
    `transformers` gives every head (`...ForTokenClassification`, `...ForQuestionAnswering`)."""
    name = type(getattr(model, "module", model)).__name__
    if name.endswith("ForTokenClassification"):
        return tag_forward(model)
    if name.endswith("ForQuestionAnswering"):
        return span_forward
    return own_forward
