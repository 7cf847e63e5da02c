"""Exact match and F1 as the official SQuAD evaluation scripts define them, and the v2.0 no-answer threshold.

Written from the definitions in the official scripts ("Official evaluation script for v1.1 of the SQuAD
dataset", https://rajpurkar.github.io/SQuAD-explorer/ -> evaluate-v1.1.py, and "Official evaluation script
for SQuAD version 2.0", evaluate-v2.0.py, the version dated 2018):

- an answer is normalised by lower-casing, removing punctuation (`string.punctuation`), removing the articles
  a/an/the as whole words, and collapsing whitespace, in that order;
- exact match is 1 when the normalised strings are equal; F1 is the harmonic mean of precision and recall of
  the bag of normalised tokens (whitespace split);
- a question's score is the maximum over its gold answers; the dataset's is the mean over questions, x 100.

v2.0's rules, used here for both versions (they agree on every v1.1 file, whose gold answers are never empty):
gold answers that normalise to "" are dropped and a question left with none (an unanswerable one) has the
gold [""]; F1 is 1 when both token lists are empty and 0 when only one is.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:  # a no-answer on either side: right only when both say so
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_answers(texts: Sequence[str]) -> list[str]:
    """The gold answers a question is scored against: [""] for an unanswerable one (v2.0)."""
    kept = [t for t in texts if normalize_answer(t)]
    return kept or [""]


def raw_scores(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> tuple[dict, dict]:
    """Per question: the best exact match and F1 over its gold answers. A question without a prediction
    scores 0 (as v1.1's script counts it)."""
    exact, f1s = {}, {}
    for qid, texts in gold.items():
        answers = gold_answers(texts)
        pred = predictions.get(qid)
        exact[qid] = max(exact_match(pred, a) for a in answers) if pred is not None else 0
        f1s[qid] = max(f1(pred, a) for a in answers) if pred is not None else 0.0
    return exact, f1s


def evaluate(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """`exact` and `f1` (percent) over every question of `gold` (id -> answer texts, [] when unanswerable),
    with the HasAns/NoAns breakdown of v2.0's script when the file has unanswerable questions."""
    exact, f1s = raw_scores(gold, predictions)
    out = _summary(exact, f1s, list(gold))
    has = [q for q, texts in gold.items() if gold_answers(texts) != [""]]
    no = [q for q in gold if q not in set(has)]
    if no:
        for name, ids in (("HasAns", has), ("NoAns", no)):
            out.update({f"{name}_{k}": v for k, v in _summary(exact, f1s, ids).items()})
    out["missing"] = sum(q not in predictions for q in gold)
    return out


def _summary(exact: Mapping[str, float], f1s: Mapping[str, float], ids: Sequence[str]) -> dict[str, float]:
    n = len(ids)
    return {"exact": 100.0 * sum(exact[q] for q in ids) / n if n else 0.0,
            "f1": 100.0 * sum(f1s[q] for q in ids) / n if n else 0.0, "total": n}


def best_threshold(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                   null_margins: Mapping[str, float]) -> dict[str, float]:
    """The no-answer threshold that maximises exact match and F1 on `gold`, as v2.0's `find_best_thresh`.

    `predictions` are each question's best non-null answer, `null_margins` its null score minus that answer's
    score (the script's `na_prob`); a question predicts "" when its margin exceeds the threshold. The search
    starts from "every question unanswered" at threshold 0.0 and, in increasing margin, lets each question
    answer, keeping the margin at which the running score is highest (strictly: ties keep the lower one).
    As in the script, a file where answering never beats all-unanswered reports threshold 0.0."""
    exact, f1s = raw_scores(gold, predictions)
    out = {}
    for name, scores in (("exact", exact), ("f1", f1s)):
        score, thresh = _find_best(gold, predictions, scores, null_margins)
        out[f"best_{name}"], out[f"best_{name}_thresh"] = score, thresh
    return out


def _find_best(gold, predictions, scores, margins) -> tuple[float, float]:
    has_answer = {q: gold_answers(t) != [""] for q, t in gold.items()}
    current = best = sum(not h for h in has_answer.values())
    thresh = 0.0
    for qid in sorted(scores, key=lambda q: margins[q]):
        if has_answer[qid]:
            current += scores[qid]
        elif predictions.get(qid):  # answering an unanswerable question loses its point
            current -= 1
        if current > best:
            best, thresh = current, margins[qid]
    return 100.0 * best / len(scores), thresh
