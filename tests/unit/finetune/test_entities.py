"""The entity chunker and its scores, on cases worked out by hand with conlleval's rules."""

from __future__ import annotations

import numpy as np
import pytest

from alum.finetune.entities import chunks, entity_scores, sentences, split_tag


@pytest.mark.parametrize("tags, expected", [
    # IOB2: every chunk opens with B
    (["B-PER", "I-PER", "O", "B-LOC"], [(0, 1, "PER"), (3, 3, "LOC")]),
    # IOB1: I opens a chunk; B only separates two adjacent chunks of one type
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [(0, 1, "PER"), (2, 2, "PER"), (4, 4, "LOC")]),
    # a change of type ends a chunk and opens another, with no B
    (["B-PER", "I-LOC", "I-LOC"], [(0, 0, "PER"), (1, 2, "LOC")]),
    # B after B of one type: two chunks
    (["B-ORG", "B-ORG"], [(0, 0, "ORG"), (1, 1, "ORG")]),
    # IOBES
    (["S-PER", "B-LOC", "E-LOC", "I-LOC"], [(0, 0, "PER"), (1, 2, "LOC"), (3, 3, "LOC")]),
    # a chunk running to the sentence's end is closed there
    (["O", "B-MISC", "I-MISC"], [(1, 2, "MISC")]),
    # types with hyphens (WNUT-17's creative-work)
    (["B-creative-work", "I-creative-work"], [(0, 1, "creative-work")]),
    (["O", "O"], []),
])
def test_chunks(tags, expected):
    assert chunks(tags) == expected


def test_iob1_and_iob2_spell_the_same_entities():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O"]
    assert chunks(iob1) == chunks(iob2) == [(0, 1, "PER"), (3, 3, "LOC"), (4, 4, "LOC")]
    scores = entity_scores([iob2], [iob1])
    assert scores["entity_f1"] == 1.0 and scores["token_accuracy"] == pytest.approx(4 / 6)


def test_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-MISC", "B-ORG"]]
    # gold: PER 0-1, LOC 3, ORG 1 (3); predicted: PER 0, LOC 3, MISC 0, ORG 1 (4); right: LOC, ORG (2)
    scores = entity_scores(gold, pred)
    p, r = 2 / 4, 2 / 3
    assert scores["entity_precision"] == pytest.approx(p)
    assert scores["entity_recall"] == pytest.approx(r)
    assert scores["entity_f1"] == pytest.approx(2 * p * r / (p + r))
    assert scores["token_accuracy"] == pytest.approx(4 / 6)


def test_nothing_predicted_or_nothing_to_find_scores_zero():
    assert entity_scores([["B-PER"]], [["O"]])["entity_f1"] == 0.0
    assert entity_scores([["O"]], [["B-PER"]])["entity_precision"] == 0.0


def test_an_entity_cut_at_a_sentence_end_does_not_run_into_the_next():
    tags = np.array(["O", "B-PER", "I-PER", "O"], dtype=object)
    parts = sentences(tags, np.array([1, 0, 1, 0]))
    assert [list(p) for p in parts] == [["O", "B-PER"], ["I-PER", "O"]]
    # each sentence chunked alone: two one-token PER entities, not one PER spanning the boundary
    assert [chunks(list(p)) for p in parts] == [[(1, 1, "PER")], [(0, 0, "PER")]]
    assert chunks(list(tags)) == [(1, 2, "PER")]


@pytest.mark.parametrize("tag", ["PER", "X-PER", "B-", "b-PER", ""])
def test_a_tag_that_does_not_chunk_is_refused(tag):
    with pytest.raises(ValueError, match="neither O nor"):
        split_tag(tag)
