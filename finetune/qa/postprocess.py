"""Per-window start and end logits back to one text answer per example.

For each window, the `n_best` highest start and end logits are paired; a pair is a candidate when both
tokens are context tokens of that window, end >= start, and it spans at most `max_answer_length` tokens. Its
score is start + end logit and its text the context's characters from the start token's first to the end
token's last. An example's answer is its best candidate over all its windows.

SQuAD v2.0: the null score of a window is start[CLS] + end[CLS]; an example's is the minimum over its
windows (the window that most believes an answer is there decides, as in HF's `run_qa.py`). The example is
predicted unanswerable ("") when null score - best score > `threshold` (default 0.0); that margin is what
`squad_metrics.best_threshold` tunes on a dev set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alum.finetune.qa.features import QAFeatures
from alum.finetune.qa.reading import QAExample


@dataclass
class SpanPrediction:
    text: str  # the best non-null answer ("" when no window had a valid span)
    score: float  # its start + end logit (-inf when none)
    null_score: float  # minimum over the example's windows of start[CLS] + end[CLS]

    @property
    def null_margin(self) -> float:
        return self.null_score - self.score

    def answer(self, threshold: float | None = 0.0) -> str:
        """The prediction: "" when the null margin exceeds `threshold`; None: never "" (SQuAD v1.1)."""
        if threshold is not None and self.null_margin > threshold:
            return ""
        return self.text


def best_spans(examples: list[QAExample], features: QAFeatures, start_logits: torch.Tensor,
               end_logits: torch.Tensor, n_best: int = 20, max_answer_length: int = 30) -> dict[str, SpanPrediction]:
    """The best span and null score of every example that has windows, by example id."""
    starts, ends = start_logits.float().cpu(), end_logits.float().cpu()
    best: dict[int, SpanPrediction] = {}
    for w in range(len(features)):
        e = features.example_index[w]
        context = examples[e].context
        offsets, cls = features.offsets[w], features.cls_index[w]
        s_row, e_row = starts[w], ends[w]
        current = best.setdefault(e, SpanPrediction("", float("-inf"), float("inf")))
        current.null_score = min(current.null_score, float(s_row[cls] + e_row[cls]))
        k = min(n_best, s_row.numel())
        for s in s_row.topk(k).indices.tolist():
            for t in e_row.topk(k).indices.tolist():
                if offsets[s] is None or offsets[t] is None or t < s or t - s + 1 > max_answer_length:
                    continue
                score = float(s_row[s] + e_row[t])
                if score > current.score:
                    current.text, current.score = context[offsets[s][0]:offsets[t][1]], score
    return {examples[e].id: pred for e, pred in best.items()}


def answers(predictions: dict[str, SpanPrediction], threshold: float | None = 0.0) -> dict[str, str]:
    """Every example's answer text at `threshold` (None: SQuAD v1.1, always the best span)."""
    return {qid: p.answer(threshold) for qid, p in predictions.items()}
