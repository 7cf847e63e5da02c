"""The GLUE metrics against values worked out by hand (and scipy's, where it is installed)."""

from __future__ import annotations

import numpy as np
import pytest

from alum.finetune import metrics as M


def test_accuracy_f1_matthews_on_a_worked_example():
    pred, gold = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])  # TP 2, FP 1, FN 1, TN 1
    assert M.accuracy(pred, gold) == pytest.approx(3 / 5)
    assert M.f1(pred, gold) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert M.matthews(pred, gold) == pytest.approx((2 * 1 - 1 * 1) / np.sqrt(3 * 3 * 2 * 2))


def test_degenerate_predictions_give_zero_not_nan():
    gold = np.array([0, 1, 1, 0])
    constant = np.zeros(4, dtype=int)
    assert M.f1(constant, gold) == 0.0
    assert M.matthews(constant, gold) == 0.0
    assert M.pearson(np.ones(4), gold) == 0.0


def test_multiclass_f1_is_macro_and_matthews_is_one_when_perfect():
    gold = np.array([0, 1, 2, 2, 1, 0])
    assert M.matthews(gold, gold, 3) == pytest.approx(1.0)
    pred = np.array([0, 1, 2, 1, 1, 0])  # class 0: F1 1; class 1: P 2/3 R 1 -> 0.8; class 2: P 1 R 1/2 -> 2/3
    assert M.f1(pred, gold, 3) == pytest.approx((1 + 0.8 + 2 / 3) / 3)


def test_spearman_averages_tied_ranks():
    x, y = np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 4.0])
    assert list(M.ranks(x)) == [1.0, 2.5, 2.5, 4.0]
    assert M.spearman(x, y) == pytest.approx(4.5 / np.sqrt(4.5 * 5.0))


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 200).astype(float)  # many ties
    y = x + rng.normal(0, 2, 200)
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_task_metrics_pick_by_kind():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert set(M.task_metrics(logits, np.array([0, 1, 1]), regression=False)) == {"accuracy", "f1", "matthews"}
    scores = np.array([[0.1], [0.5], [0.9]])
    out = M.task_metrics(scores, np.array([0.0, 1.0, 2.0]), regression=True)
    assert out["spearman"] == pytest.approx(1.0) and set(out) == {"pearson", "spearman", "mse"}
