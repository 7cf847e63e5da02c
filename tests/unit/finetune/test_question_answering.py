"""The question-answering task type (finetune/question_answering.py): windows scored per question whatever the
batches and their order (an answer in a question's second window), the v2.0 figures at the set and at the
tuned threshold, the task's fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alum.finetune.qa.reading import QAData, QAExample
from alum.finetune.question_answering import (QASplit, QuestionAnswering, collate, encode_windows, gold_rows,
                                              qa_metrics)
from alum.finetune.tasks import TaskConfig, task_from
from support.qa import tiny_tokenizer

FILLER = "The weather in the valley was mild and the rivers ran slowly through the old fields. " * 3
LONG = FILLER + "Rollo was the first ruler of Normandy."


def encoded(examples: list[QAExample], task: TaskConfig, max_len: int = 48):
    data = QAData(examples, "v2.0" if any(e.is_impossible for e in examples) else "v1.1")
    return encode_windows(QASplit(None, data, training=False), task, tiny_tokenizer("wordpiece"), max_len)


def scored(windows, task: TaskConfig, logits_of, batch_size: int, order: list[int]) -> dict[str, float]:
    """What `evaluate.predictions` hands the metrics: per batch its (2B, T) rows, start then end, and the gold
    rows, concatenated over the batches (the windows taken in `order`)."""
    outputs, gold = [], []
    for i in range(0, len(order), batch_size):
        batch = collate([windows[w] for w in order[i:i + batch_size]])
        starts, ends = zip(*(logits_of(w) for w in batch["window"].tolist()))
        outputs.append(torch.cat([torch.stack(starts), torch.stack(ends)]).numpy())
        gold.append(gold_rows(batch))
    return qa_metrics(np.concatenate(outputs), np.concatenate(gold), task)


def span_logits(start: int, end: int, score: float, width: int, cls: float = -5.0):
    s, e = torch.full((width,), -10.0), torch.full((width,), -10.0)
    s[0] = e[0] = cls  # the CLS token starts the window (BERT)
    s[start], e[end] = score, score
    return s, e


def test_a_question_is_scored_by_its_best_window_in_any_order_and_batches():
    start = LONG.index("Rollo")
    examples = [QAExample("long", "Who was the first ruler?", LONG, ["Rollo"], [(start, start + 5)]),
                QAExample("short", "Where did the rivers run?", "The rivers ran through the fields.",
                          ["the fields"], [(24, 34)])]
    task = task_from({"name": "qa", "type": "question_answering", "version": "v1.1", "stride": 8,
                      "max_query_length": 16})
    windows = encoded(examples, task)
    example_of = [windows.features["start_positions"], windows.features["end_positions"]]
    firsts = [w for w in range(len(windows)) if windows[w]["start_positions"] != 0]
    assert len(windows) >= 3 and len(firsts) == 2  # the long question has windows without its answer
    assert firsts[0] > 0 and windows[firsts[0] - 1]["start_positions"] == 0  # its answer is in a later window

    def logits_of(w: int):
        width = len(windows[w]["input_ids"])
        gold_start, gold_end = example_of[0][w], example_of[1][w]
        if gold_start:  # the window holding the answer: the best span of its question
            return span_logits(gold_start, gold_end, 5.0, width)
        context = [t for t, m in enumerate(windows[w]["span_mask"]) if m and t]  # a wrong span, scored lower
        return span_logits(context[0], context[1], 4.0, width)

    n = len(windows)
    for batch_size, order in ((1, list(range(n))), (2, list(reversed(range(n)))), (3, [1, 0, 2, *range(3, n)])):
        result = scored(windows, task, logits_of, batch_size, order)
        assert result["exact_match"] == result["f1"] == 100.0 and result["questions"] == 2, (batch_size, order)
    # the windows of the long question alone (a dev subset): scored over the questions it holds
    # (the answer ends the long context, so the window holding it is that question's last)
    assert scored(windows, task, logits_of, 2, list(range(firsts[0] + 1)))["questions"] == 1


def test_v2_figures_at_the_set_threshold_and_at_the_one_tuned_on_the_file():
    context = "the king ruled the land"
    examples = [QAExample("has", "who ruled", context, ["the king"], [(0, 8)]),
                QAExample("none", "who ate", context, [], [], is_impossible=True)]

    def task(threshold: float) -> TaskConfig:
        return task_from({"name": "qa", "type": "question_answering", "version": "v2.0", "stride": 8,
                          "max_query_length": 8, "null_threshold": threshold})

    windows = encoded(examples, task(0.0), max_len=32)
    assert len(windows) == 2

    def logits_of(w: int):
        # both predict the span "king" (score 2); null scores 3 (margin 1: answered from threshold 1) and 5 (margin 3)
        context_tokens = [t for t, m in enumerate(windows[w]["span_mask"]) if m and t]
        return span_logits(context_tokens[1], context_tokens[1], 1.0, len(windows[w]["input_ids"]),
                           cls=1.5 if w == 0 else 2.5)

    at_zero = scored(windows, task(0.0), logits_of, 2, [0, 1])
    # at 0 both say "no answer": right for the unanswerable one only
    assert at_zero["exact_match"] == 50.0 and at_zero["HasAns_exact_match"] == 0 and at_zero["NoAns_exact_match"] == 100
    # tuned: answering from margin 1 on gets both right; the threshold is that margin
    assert at_zero["tuned_exact_match"] == at_zero["tuned_f1"] == 100.0
    assert at_zero["tuned_exact_match_threshold"] == pytest.approx(1.0)
    at_two = scored(windows, task(2.0), logits_of, 1, [1, 0])  # the set threshold decides the headline figures
    assert at_two["exact_match"] == 100.0 and at_two["tuned_exact_match"] == 100.0
    v1 = scored(windows, task_from({"name": "qa", "type": "question_answering", "version": "v1.1", "stride": 8,
                                    "max_query_length": 8}), logits_of, 2, [0, 1])
    assert "tuned_f1" not in v1 and v1["exact_match"] == 50.0  # v1.1 never says "no answer"


@pytest.mark.parametrize("fields, message", [
    ({"labels": ["a", "b"]}, "labels: a question-answering task reads SQuAD files"),
    ({"metric": "accuracy"}, "metric: 'accuracy' does not fit a question-answering task"),
    ({"format": "tsv"}, "format: a question-answering task reads SQuAD JSON or JSON lines"),
    ({"stride": 0}, "stride must be at least 1"),
    ({"name": "sst2"}, "type: 'sst2' is a GLUE sequence-classification preset"),
])
def test_task_fields_a_reader_refuses(fields, message):
    from alum.errors import UserError

    with pytest.raises(UserError, match=message):
        task_from({"name": "qa", "type": "question_answering", **fields})


def test_a_reader_task_defaults_to_f1_and_auto_version():
    task = task_from({"name": "qa", "type": "question_answering"})
    assert task.metric == "f1" and task.version == "auto" and not task.labels


def test_the_first_line_counts_windows_and_the_questions_they_come_from():
    """What the loop counts (windows) and what is scored (questions), for the whole file and for a subset."""
    task = task_from({"name": "qa", "type": "question_answering", "stride": 8, "max_query_length": 8},
                     source="test")
    start = LONG.index("Rollo")
    examples = [QAExample("long", "Who ruled Normandy?", LONG, ["Rollo"], [(start, start + 5)]),
                QAExample("short", "Who?", "Rollo ruled.", ["Rollo"], [(0, 5)])]
    windows = encoded(examples, task)
    assert len(windows) > 2  # the long context takes several windows
    line = QuestionAnswering().sizes(windows, windows.subset(1, 0), {})
    assert line == f"{len(windows)} training and 1 dev windows (2 and 1 questions)"
