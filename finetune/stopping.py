"""Early stopping on the task metric: the rule alone, fed one dev evaluation at a time, so it can be tested
on a sequence of numbers. Every current metric (accuracy, F1, Matthews, Pearson, Spearman) is better higher."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStop:
    """Stop when `patience` evaluations in a row have brought no gain of more than `min_delta` over the best
    value so far (patience 0: never stop). A gain of `min_delta` or less does not reset the count, nor move the
    value later gains are measured from, so a slow drift cannot keep a run alive one crumb at a time."""

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    best_update: int = 0  # the update of the last evaluation that counted as a gain
    stale: int = 0  # evaluations since then

    def observe(self, value: float, update: int) -> bool:
        """Take the evaluation at `update`; whether training should stop now. A NaN is no gain."""
        if value > self.best + self.min_delta:
            self.best, self.best_update, self.stale = value, update, 0
            return False
        self.stale += 1
        return self.patience > 0 and self.stale >= self.patience

    def message(self, update: int) -> str:
        return (f"early stop at update {update}: no gain over {self.stale} evaluations since update "
                f"{self.best_update}")
