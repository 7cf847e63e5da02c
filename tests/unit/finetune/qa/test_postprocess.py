"""Per-window logits back to text (finetune/qa/postprocess.py): candidates inside the context only, end >=
start, at most max_answer_length tokens, the best over windows; v2.0's null score (minimum over windows) and
threshold."""

from __future__ import annotations

import math

import pytest
import torch

from alum.finetune.qa.features import QAFeatures
from alum.finetune.qa.postprocess import SpanPrediction, answers, best_spans
from alum.finetune.qa.reading import QAExample

CONTEXT = "Rollo led the Normans to Normandy"
#          0     6   10  14      22 25
WORDS = [(0, 5), (6, 9), (10, 13), (14, 21), (22, 24), (25, 33)]


def window(example: int = 0) -> tuple[list, int]:
    """Tokens: [CLS] q q [SEP] six context words [SEP]; the offsets of the context words only."""
    return [None, None, None, None, *WORDS, None], example


def features(*windows) -> QAFeatures:
    n = len(windows)
    return QAFeatures([[0] * 11] * n, [[1] * 11] * n, None, [0] * n, [0] * n, [w[1] for w in windows],
                      [w[0] for w in windows], [0] * n)


def logits(**at) -> torch.Tensor:
    row = torch.zeros(11)
    for position, value in at.items():
        row[int(position[1:])] = value
    return row


EX = [QAExample("q", "Who led?", CONTEXT, ["Rollo"], [(0, 5)])]


def test_best_span_is_the_highest_valid_pair():
    # the best start is a question token (2) and the best end is before the best context start: both skipped
    starts = logits(p2=9.0, p9=5.0, p4=3.0)
    ends = logits(p2=9.0, p4=4.0, p9=1.0)
    (pred,) = best_spans(EX, features(window()), starts[None], ends[None]).values()
    assert pred.text == "Rollo" and pred.score == pytest.approx(7.0)  # start 4 + end 4 (9+1=6 at "Normandy")
    assert pred.null_score == 0.0


def test_max_answer_length_and_end_before_start():
    starts, ends = logits(p4=5.0), logits(p9=5.0, p3=4.0)
    pred = best_spans(EX, features(window()), starts[None], ends[None], max_answer_length=5)["q"]
    # 4..9 is 6 tokens: too long; 4..3 ends before it starts; the best left pairs start 4 with a 0-logit end
    assert CONTEXT.startswith(pred.text) and pred.text != CONTEXT and pred.score == pytest.approx(5.0)
    whole = best_spans(EX, features(window()), starts[None], ends[None], max_answer_length=6)["q"]
    assert whole.text == CONTEXT and whole.score == pytest.approx(10.0)


def test_the_best_window_wins_and_the_null_score_is_the_minimum_over_windows():
    starts = torch.stack([logits(p0=6.0, p5=2.0), logits(p0=1.0, p7=3.0)])
    ends = torch.stack([logits(p0=6.0, p5=2.0), logits(p0=1.0, p7=3.0)])
    pred = best_spans(EX, features(window(), window()), starts, ends)["q"]
    assert pred.text == "Normans" and pred.score == pytest.approx(6.0)  # window 2's (7, 7) beats window 1's (5, 5)
    assert pred.null_score == pytest.approx(2.0)  # min(12, 2)
    assert pred.null_margin == pytest.approx(-4.0)


@pytest.mark.parametrize("threshold, expected", [(0.0, ""), (2.5, "Rollo"), (None, "Rollo")])
def test_threshold_decides_no_answer(threshold, expected):
    pred = SpanPrediction("Rollo", score=3.0, null_score=5.0)  # margin 2
    assert pred.answer(threshold) == expected
    assert answers({"q": pred}, threshold) == {"q": expected}


def test_a_margin_equal_to_the_threshold_answers():
    assert SpanPrediction("Rollo", 3.0, 3.0).answer(0.0) == "Rollo"


def test_an_example_with_no_valid_span_has_no_text():
    only_question = [None] * 11
    pred = best_spans(EX, features((only_question, 0)), torch.zeros(1, 11), torch.zeros(1, 11))["q"]
    assert pred.text == "" and pred.score == -math.inf
