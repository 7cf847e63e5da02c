"""How the outputs of two passes are compared: one object per kind, so no helper branches on a name.

A method asks its target's divergence for the comparison it needs; which side is a constant (detached) is
part of the question, since the released ALUM/SMART code's losses differ exactly there. `Target` takes the
names "kl" (classification and masked-LM logits) and "mse" (regression outputs), or an instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import Tensor

from alum.adversarial import functional as AF

if TYPE_CHECKING:
    from alum.adversarial.target import ForwardOutput


class Divergence:
    """D(p || q) between the outputs of two passes. A subclass implements the four comparisons."""

    name: ClassVar[str]

    def __call__(self, p_logits: Tensor, q_logits: Tensor, reduction: str = "mean") -> Tensor:
        """D(p || q) of two logit tensors, nothing detached: for measuring, not for training.

        ALUM's and SMART's ascent objective averages over rows, as their released code does (`batchmean`);
        VAT's power iteration sums (its step is normalised, so only the gradient's size changes: summed, it
        does not shrink with the number of rows towards float32's floor)."""
        raise NotImplementedError

    def moving_from_fixed(self, fixed: ForwardOutput, moving: ForwardOutput, reduction: str = "mean") -> Tensor:
        """D(sg(fixed) || moving): gradient reaches `moving` only. Also the ascent objective of ALUM and SMART,
        as their released code takes it: KL(clean || adv), averaged over rows (`batchmean`)."""
        raise NotImplementedError

    def moving_to_fixed(self, moving: ForwardOutput, fixed: ForwardOutput, reduction: str = "mean") -> Tensor:
        """D(moving || sg(fixed)): gradient reaches `moving` only."""
        raise NotImplementedError

    def symmetric(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        """D(a||b) + D(b||a), each term's target detached: the ALUM/SMART smoothness loss."""
        raise NotImplementedError

    def symmetric_to_fixed(self, moving: ForwardOutput, fixed: ForwardOutput) -> Tensor:
        """D(moving||fixed) + D(fixed||moving) with `fixed` a constant: SMART's proximal term to its teacher."""
        return self.moving_to_fixed(moving, fixed) + self.moving_from_fixed(fixed, moving)

    def mutual(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        """1/2 (D(a||b) + D(b||a)) with nothing detached: both passes learn from each other (R-Drop)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class KL(Divergence):
    name = "kl"

    def __call__(self, p_logits: Tensor, q_logits: Tensor, reduction: str = "mean") -> Tensor:
        return AF.kl(p_logits, q_logits, reduction)

    def moving_from_fixed(self, fixed: ForwardOutput, moving: ForwardOutput, reduction: str = "mean") -> Tensor:
        return AF.kl_from_fixed(fixed.log_probs, moving.logits, reduction)

    def moving_to_fixed(self, moving: ForwardOutput, fixed: ForwardOutput, reduction: str = "mean") -> Tensor:
        return AF.kl_to_fixed(moving.logits, fixed.log_probs, reduction)

    def symmetric(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        # a's log-probabilities, when the task loss computed them already, save a log-softmax
        return AF.symmetric_kl(a.logits, b.logits, log_a=a.cached_log_probs)

    def mutual(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        # the passes' log-probabilities are the ones their task losses use (computed once per pass)
        return 0.5 * (AF.kl_log(a.log_probs, b.log_probs) + AF.kl_log(b.log_probs, a.log_probs))


class MSE(Divergence):
    """Squared error, for regression outputs. It is symmetric already, so the symmetric forms are the error
    once (gradient to both sides), not twice."""

    name = "mse"

    def __call__(self, p_logits: Tensor, q_logits: Tensor, reduction: str = "mean") -> Tensor:
        return AF.mse(p_logits, q_logits, reduction)

    def moving_from_fixed(self, fixed: ForwardOutput, moving: ForwardOutput, reduction: str = "mean") -> Tensor:
        return AF.mse(moving.logits, fixed.logits.detach(), reduction)

    def moving_to_fixed(self, moving: ForwardOutput, fixed: ForwardOutput, reduction: str = "mean") -> Tensor:
        return AF.mse(moving.logits, fixed.logits.detach(), reduction)

    def symmetric(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        return AF.mse(a.logits, b.logits)

    def symmetric_to_fixed(self, moving: ForwardOutput, fixed: ForwardOutput) -> Tensor:
        return AF.mse(moving.logits, fixed.logits.detach())

    def mutual(self, a: ForwardOutput, b: ForwardOutput) -> Tensor:
        return AF.mse(a.logits, b.logits)


DIVERGENCES: dict[str, Divergence] = {d.name: d for d in (KL(), MSE())}


def as_divergence(divergence: str | Divergence) -> Divergence:
    """A divergence given by name ("kl", "mse") or as an instance."""
    if isinstance(divergence, Divergence):
        return divergence
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r} ({' or '.join(DIVERGENCES)}, or a Divergence)")
    return DIVERGENCES[divergence]
