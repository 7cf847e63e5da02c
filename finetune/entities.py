"""Entity-level scores of a tagging: the chunks (entities) of a tag sequence, and precision, recall and F1
over the entities of many sentences, as conlleval (CoNLL-2000/2003's scorer) and seqeval's default mode
count them.

Tags are `O` or `<prefix>-<type>`, prefix B, I, E or S (IOB1, IOB2 and IOBES all read the same way). The
chunking is conlleval's: a chunk starts at B or S, at an I or E whose type differs from the previous tag's,
or at an I or E after O, E or S; it ends before a tag that starts another chunk or is O, and after E or S.
So IOB1 (`I-PER I-PER B-PER`: B only between two adjacent chunks of one type) and IOB2 (every chunk starts
at B) give the same entities, and an I- tag after O (a "broken" IOB2 chunk) opens a chunk, as conlleval
does. A chunk never crosses a sentence boundary: each sentence is chunked alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PREFIXES = ("B", "I", "E", "S")


def split_tag(tag: str) -> tuple[str, str]:
    """("O", "") for O, else (prefix, type); a ValueError for anything else (the labels are checked with it)."""
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if prefix not in PREFIXES or not dash or not kind:
        raise ValueError(f"tag {tag!r} is neither O nor <B|I|E|S>-<type>")
    return prefix, kind


def _ends(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """Whether the chunk holding `prev` ends before `cur`."""
    (p, pt), (c, ct) = prev, cur
    if p == "O":
        return False
    return p in ("E", "S") or c in ("B", "S", "O") or pt != ct


def _starts(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """Whether a chunk starts at `cur`."""
    (p, pt), (c, ct) = prev, cur
    if c == "O":
        return False
    return c in ("B", "S") or p in ("O", "E", "S") or pt != ct


def chunks(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """The entities of one sentence: (first token, last token inclusive, type), in order."""
    out: list[tuple[int, int, str]] = []
    prev, start = ("O", ""), -1
    for i, tag in enumerate([*tags, "O"]):  # a closing O ends a chunk cut at the sentence's end
        cur = split_tag(tag)
        if start >= 0 and _ends(prev, cur):
            out.append((start, i - 1, prev[1]))
            start = -1
        if _starts(prev, cur):
            start = i
        prev = cur
    return out


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 over sentences (an entity counts as found when its
    span and type both match), and the share of tokens tagged right. Nothing predicted: precision 0."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences, {len(pred)} predicted")
    found = predicted = wanted = tokens = right = 0
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError(f"a sentence of {len(g)} gold tags has {len(p)} predicted")
        gold_chunks, pred_chunks = set(chunks(g)), set(chunks(p))
        found += len(gold_chunks & pred_chunks)
        predicted += len(pred_chunks)
        wanted += len(gold_chunks)
        tokens += len(g)
        right += sum(a == b for a, b in zip(g, p))
    precision = found / predicted if predicted else 0.0
    recall = found / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall,
            "token_accuracy": right / tokens if tokens else 0.0}


def sentences(values: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """Split a flat run of per-token values at the positions where `starts` is set (a sentence's first
    labelled token)."""
    cuts = np.flatnonzero(starts)
    return [part for part in np.split(values, cuts) if len(part)]
