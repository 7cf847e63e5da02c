"""Windows of (question, context) tokens (finetune/qa/features.py), for a WordPiece and a byte-level BPE
tokenizer: the answer's positions, CLS where a window does not hold it, overlapping windows, and the
strongest check of the offsets: gold positions used as logits give back every gold answer (EM 100)."""

from __future__ import annotations

import pytest
import torch

from alum.errors import UserError
from alum.finetune.qa.features import encode
from alum.finetune.qa.postprocess import answers, best_spans
from alum.finetune.qa.reading import QAExample, read
from alum.finetune.qa.squad_metrics import evaluate
from support.qa import SQUAD_V2_DEV, TOKENIZERS, tiny_tokenizer

WINDOW = dict(max_length=96, stride=32, max_query_length=24)


@pytest.fixture(scope="module")
def dev():
    return read(SQUAD_V2_DEV).examples


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_gold_positions_as_logits_give_back_every_answer(dev, kind):
    tok = tiny_tokenizer(kind)
    feats = encode(dev, tok, **WINDOW)
    assert len(feats) > 2 * len(dev)  # contexts are longer than a window: the sample really is cut
    starts = torch.zeros(len(feats), WINDOW["max_length"])
    ends = torch.zeros_like(starts)
    rows = torch.arange(len(feats))
    starts[rows, torch.tensor(feats.start_positions)] = 10.0
    ends[rows, torch.tensor(feats.end_positions)] = 10.0
    preds = best_spans(dev, feats, starts, ends)
    gold = {ex.id: ex.answers for ex in dev}
    scores = evaluate(gold, answers(preds, threshold=0.0))
    assert scores["exact"] == 100.0 and scores["f1"] == 100.0 and scores["missing"] == 0
    assert scores["NoAns_total"] == 333
    # the answerable questions scored as v1.1 scores them: no null answer, the best span always
    v1 = {q: texts for q, texts in gold.items() if texts}
    assert evaluate(v1, answers({q: preds[q] for q in v1}, threshold=None))["exact"] == 100.0


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_windows_overlap_by_the_stride_and_keep_context_offsets_only(dev, kind):
    tok = tiny_tokenizer(kind)
    feats = encode(dev[:40], tok, **WINDOW)
    assert (feats.token_type_ids is not None) == (kind == "wordpiece")  # RoBERTa has no token types
    shared = 0
    for w in range(1, len(feats)):
        if feats.example_index[w] != feats.example_index[w - 1]:
            continue
        # the same tokens, ending at the same characters (a byte-level window's first token keeps its leading
        # space in its start offset, where the window before trimmed it)
        before = [(i, o[1]) for i, o in zip(feats.input_ids[w - 1], feats.offsets[w - 1]) if o is not None]
        after = [(i, o[1]) for i, o in zip(feats.input_ids[w], feats.offsets[w]) if o is not None]
        assert after[:WINDOW["stride"]] == before[-WINDOW["stride"]:]
        shared += 1
    assert shared > 0
    for w in range(len(feats)):
        ids, offsets = feats.input_ids[w], feats.offsets[w]
        assert ids[feats.cls_index[w]] == tok.cls_token_id and offsets[feats.cls_index[w]] is None
        assert len(ids) == WINDOW["max_length"] and all(  # specials and padding have no offsets
            offsets[t] is None for t, i in enumerate(ids) if i in (tok.pad_token_id, tok.sep_token_id))


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_positions_point_at_the_answer_or_at_cls(kind):
    tok = tiny_tokenizer(kind)
    context = " ".join(["The Normans were the people of Normandy."] * 12) + " Rollo led them."
    ex = QAExample("q", "Who led the Normans?", context, ["Rollo"], [(context.index("Rollo"), context.index("Rollo") + 5)])
    none = QAExample("n", "Who led the Danes?", context, [], [], is_impossible=True)
    feats = encode([ex, none], tok, max_length=48, stride=8, max_query_length=16)
    answer = ex.spans[0]
    found = 0
    for w in range(len(feats)):
        s, e, cls = feats.start_positions[w], feats.end_positions[w], feats.cls_index[w]
        spans = [o for o in feats.offsets[w] if o is not None]
        holds = spans[0][0] <= answer[0] and answer[1] <= spans[-1][1]
        if feats.example_index[w] == 1 or not holds:
            assert s == e == cls
            continue
        found += 1
        assert context[feats.offsets[w][s][0]:feats.offsets[w][e][1]] == "Rollo"
    assert 1 <= found < len(feats) // 2  # the early windows do not hold the answer: they point at CLS


def test_a_long_question_is_cut_to_max_query_length():
    tok = tiny_tokenizer("wordpiece")
    question = " ".join(["Normans"] * 50) + "?"
    feats = encode([QAExample("q", question, "Rollo led them.", ["Rollo"], [(0, 5)])], tok,
                   max_length=64, stride=8, max_query_length=10)
    assert feats.token_type_ids[0].index(1) == 1 + 10 + 1  # [CLS], 10 question tokens, [SEP]
    assert feats.start_positions == [12] and feats.end_positions == [12]


def test_training_drops_answerable_examples_without_a_matching_answer():
    tok = tiny_tokenizer("wordpiece")
    examples = [QAExample("ok", "Who?", "Rollo led.", ["Rollo"], [(0, 5)]),
                QAExample("bad", "Who?", "Rollo led.", ["Vikings"], [])]
    assert encode(examples, tok, max_length=32, stride=4, max_query_length=8, training=True).dropped == ["bad"]
    kept = encode(examples, tok, max_length=32, stride=4, max_query_length=8)
    assert kept.dropped == [] and kept.example_index == [0, 1]


def test_a_window_with_no_room_for_the_stride_is_refused():
    with pytest.raises(UserError, match="max_length 64 leaves 37 context tokens .* must exceed the stride \\(40\\)"):
        encode([], tiny_tokenizer("wordpiece"), max_length=64, stride=40, max_query_length=24)


def test_a_tokenizer_without_cls_or_offsets_is_refused():
    import copy

    tok = copy.deepcopy(tiny_tokenizer("wordpiece"))
    tok.cls_token = None
    with pytest.raises(UserError, match="needs a tokenizer with a CLS token"):
        encode([], tok, max_length=64, stride=8, max_query_length=8)

    class Slow:
        is_fast = False

    with pytest.raises(UserError, match="needs a fast tokenizer"):
        encode([], Slow(), max_length=64, stride=8, max_query_length=8)
