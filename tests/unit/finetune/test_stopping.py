"""The early-stopping rule on sequences of dev figures (the end-to-end run is in
tests/integration/test_finetune_extras.py)."""

from __future__ import annotations

import math

from alum.finetune.stopping import EarlyStop


def stops_at(values, patience, min_delta=0.0):
    """The 1-based evaluation the rule stops at, or None when it never does."""
    rule = EarlyStop(patience, min_delta)
    for i, value in enumerate(values, start=1):
        if rule.observe(value, update=10 * i):
            return i
    return None


def test_a_flat_metric_stops_after_patience_evaluations_past_the_first():
    assert stops_at([0.5] * 10, patience=3) == 4  # the first sets the bar, three more bring nothing
    assert stops_at([0.5] * 10, patience=1) == 2


def test_patience_0_never_stops():
    assert stops_at([0.5] * 50, patience=0) is None
    assert stops_at([0.9, 0.1, 0.1, 0.1], patience=0) is None


def test_a_gain_resets_the_count():
    # stale 1, 2, then a gain at evaluation 4: the count starts again and runs out at evaluation 7
    assert stops_at([0.5, 0.4, 0.5, 0.6, 0.6, 0.55, 0.6, 0.9], patience=3) == 7
    assert stops_at([0.1, 0.2, 0.3, 0.4, 0.5], patience=1) is None  # a gain every time


def test_min_delta_counts_a_small_gain_as_none_and_keeps_the_bar():
    # each within 0.01 of the first: with min_delta 0.01 none is a gain; without, 0.505 and 0.509 are
    assert stops_at([0.5, 0.505, 0.509, 0.508], patience=3, min_delta=0.01) == 4
    assert stops_at([0.5, 0.505, 0.509, 0.508], patience=3) is None
    assert stops_at([0.5, 0.505, 0.52, 0.52, 0.52], patience=2, min_delta=0.01) == 5  # 0.52 is a gain over 0.5


def test_nan_is_no_gain_and_the_message_names_the_updates():
    rule = EarlyStop(2)
    assert not rule.observe(0.7, update=5)
    assert not rule.observe(math.nan, update=10)
    assert rule.observe(0.7, update=15)
    assert rule.message(15) == "early stop at update 15: no gain over 2 evaluations since update 5"
