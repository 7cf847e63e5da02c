"""The GLUE metrics, in numpy: accuracy, F1, Matthews correlation, Pearson and Spearman correlation.

Classification metrics take integer label ids; F1 is the F1 of label id 1 for two classes (MRPC's
"equivalent") and the macro average over classes otherwise. A correlation of a constant series is 0.
"""

from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(pred == gold)) if len(gold) else 0.0


def confusion(pred: np.ndarray, gold: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[g, p]: examples of gold class g predicted as p."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (gold, pred), 1)
    return counts


def f1(pred: np.ndarray, gold: np.ndarray, num_classes: int = 2) -> float:
    counts = confusion(pred, gold, max(num_classes, 2))
    true_pos = np.diag(counts).astype(float)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    denom = predicted + actual
    per_class = np.divide(2 * true_pos, denom, out=np.zeros_like(true_pos), where=denom > 0)
    return float(per_class[1]) if num_classes <= 2 else float(per_class.mean())


def matthews(pred: np.ndarray, gold: np.ndarray, num_classes: int = 2) -> float:
    """Matthews correlation; for more than two classes the R_K generalisation (Gorodkin 2004)."""
    counts = confusion(pred, gold, max(num_classes, 2)).astype(float)
    total, correct = counts.sum(), np.trace(counts)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    numerator = correct * total - predicted @ actual
    denom = np.sqrt(total**2 - predicted @ predicted) * np.sqrt(total**2 - actual @ actual)
    return float(numerator / denom) if denom > 0 else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span (as Spearman's rho needs)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start of each run of equal values, and the mean rank of every run.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0
    out = np.empty(len(x))
    out[order] = np.repeat(mean_rank, ends - starts)
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(ranks(x), ranks(y))


def classification_metrics(logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    num_classes = logits.shape[-1]
    pred = logits.argmax(axis=-1)
    return {
        "accuracy": accuracy(pred, gold),
        "f1": f1(pred, gold, num_classes),
        "matthews": matthews(pred, gold, num_classes),
    }


def regression_metrics(scores: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    scores = scores.reshape(-1)
    return {
        "pearson": pearson(scores, gold),
        "spearman": spearman(scores, gold),
        "mse": float(np.mean((scores - gold) ** 2)) if len(gold) else 0.0,
    }


def task_metrics(outputs: np.ndarray, gold: np.ndarray, regression: bool) -> dict[str, float]:
    return regression_metrics(outputs, gold) if regression else classification_metrics(outputs, gold)
