"""Exact match and F1 as the official SQuAD v1.1/v2.0 scripts define them (finetune/qa/squad_metrics.py), on
cases computed by hand."""

from __future__ import annotations

import pytest

from alum.finetune.qa.squad_metrics import best_threshold, evaluate, exact_match, f1, gold_answers, normalize_answer


@pytest.mark.parametrize("text, normal", [
    ("The Denver Broncos", "denver broncos"),  # lower case, article dropped
    ("  an  apple, a pear!  ", "apple pear"),  # punctuation and whitespace
    ("theater", "theater"),  # articles only as whole words
    ("Saint-Clair-sur-Epte", "saintclairsurepte"),  # punctuation is removed, not replaced by a space
    ("a.m.", "am"),  # punctuation goes before articles: "a.m." is not the article "a"
    ("The", ""),
])
def test_normalisation_is_the_official_one(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Broncos.", "Broncos") == 1
    assert exact_match("Denver Broncos", "Broncos") == 0
    # pred {denver, broncos}, gold {broncos}: precision 1/2, recall 1 -> 2/3
    assert f1("Denver Broncos", "Broncos") == pytest.approx(2 / 3)
    # pred {in, 10th, and, 11th, centuries}, gold {10th, and, 11th, centuries}: p = 4/5, r = 1 -> 8/9
    assert f1("in the 10th and 11th centuries", "10th and 11th centuries") == pytest.approx(8 / 9)
    # repeated tokens count with multiplicity: pred {a.. no} -> {rollo, rollo}, gold {rollo}: p 1/2, r 1
    assert f1("Rollo Rollo", "Rollo") == pytest.approx(2 / 3)
    assert f1("Normandy", "France") == 0.0
    assert f1("", "") == 1.0 and f1("", "France") == 0.0 and f1("France", "") == 0.0


def test_gold_answers_of_an_unanswerable_question_are_the_empty_string():
    assert gold_answers([]) == [""]
    assert gold_answers(["the", "France"]) == ["France"]  # an answer that normalises to "" is dropped (v2.0)


def test_evaluate_takes_the_best_gold_answer_and_breaks_down_v2():
    gold = {"q1": ["Denver Broncos", "Broncos"], "q2": ["10th century", "the first half of the 10th century"],
            "q3": [], "q4": []}
    preds = {"q1": "Broncos", "q2": "10th", "q3": "", "q4": "Rollo"}
    out = evaluate(gold, preds)
    # q1: EM 1, F1 1. q2: EM 0, F1 max(2*(1*1/2)/(1+1/2) = 2/3 vs "first half of 10th century": p 1, r 1/5 -> 1/3)
    # q3: "" vs [""]: 1, 1. q4: "Rollo" vs [""]: 0, 0
    assert out["exact"] == pytest.approx(100 * 2 / 4)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_total"] == 2
    assert out["missing"] == 0


def test_v1_files_have_no_breakdown_and_a_missing_prediction_scores_zero():
    out = evaluate({"a": ["x"], "b": ["y"]}, {"a": "x"})
    assert out == {"exact": 50.0, "f1": 50.0, "total": 2, "missing": 1}


def test_best_threshold_follows_the_official_search():
    # best non-null answers and their null margins (null score - best score)
    gold = {"h1": ["Rollo"], "h2": ["France"], "n1": [], "n2": []}
    preds = {"h1": "Rollo", "h2": "Normandy", "n1": "Seine", "n2": "Rollo"}
    margins = {"h1": -3.0, "n1": -1.0, "h2": 0.5, "n2": 2.0}
    # start: all unanswered = 2 (n1, n2). In margin order: h1 +1 -> 3 (best, thresh -3); n1 -1 -> 2;
    # h2 +0 -> 2; n2 -1 -> 1. Best 3/4 at threshold -3.0: only h1 answers.
    out = best_threshold(gold, preds, margins)
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == -3.0
    assert out["best_f1"] == pytest.approx(75.0) and out["best_f1_thresh"] == -3.0


def test_best_threshold_when_answering_never_helps_is_reported_as_zero():
    gold = {"n1": [], "h1": ["x"]}
    out = best_threshold(gold, {"n1": "y", "h1": "x"}, {"n1": -1.0, "h1": 1.0})
    # all unanswered scores 1 (n1); answering n1 drops to 0, h1 brings it back to 1: never better than all
    # unanswered, and the script then reports 0.0
    assert out["best_exact"] == pytest.approx(50.0) and out["best_exact_thresh"] == 0.0


def test_best_threshold_keeps_the_lower_margin_on_a_tie():
    gold = {"h1": ["x"], "h2": ["z"], "n1": []}
    preds, margins = {"h1": "x", "h2": "w", "n1": ""}, {"h1": -2.0, "h2": 1.0, "n1": -1.0}
    # start 1 (n1 unanswered). h1 (+1) -> 2 at -2.0; n1's best answer is "", so answering costs nothing -> 2 at
    # -1.0; h2 is wrong (+0) -> 2 at 1.0. Ties: the strict comparison keeps -2.0
    assert best_threshold(gold, preds, margins)["best_exact_thresh"] == -2.0
