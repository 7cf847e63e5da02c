"""R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks"): the batch through the model
twice, each pass with its own dropout masks; the task loss of both passes plus alpha times their symmetric
KL, gradient flowing into both sides. No perturbation and no ascent: it is the control that tells how much
of ALUM's and SMART's smoothness term (which, with fresh masks, compares two dropout draws too) comes from
dropout alone, at two passes per step instead of their three or four.

Reference: the paper's Eq. (2)-(3), L = NLL(P1) + NLL(P2) + alpha * 1/2 (KL(P1 || P2) + KL(P2 || P1)), per
example; dropreg/R-Drop 7ab94f4 (2021-05-31), `fairseq_src/examples/roberta/roberta_rdrop_src/loss/
reg_cross_entropy.py` (`forward_kl`: the two NLLs and `reg_alpha * (p_loss + q_loss) / 2`, summed over the
batch and divided by the number of sentences as fairseq does; regression: MSE of the first pass plus
`reg_alpha` times the MSE between the passes). Where alum differs: the task loss is the model's own mean over
rows, so the terms are averages over examples (masked tokens in pretraining), the fairseq criterion's
normalisation; for regression both passes' MSE count, as for classification (the HF BERT variant of the same
commit, `modeling_bert.py` `bert_kl`, does so too)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import Tensor

from alum.adversarial.base import Method, StepReport, Trainer, total_loss
from alum.adversarial.registry import register
from alum.adversarial.target import Target


@register
class RDrop(Method):
    name = "rdrop"
    summary = "R-Drop: the task loss on two dropout passes + alpha * their symmetric KL, no perturbation (Liang et al. 2021)"
    needs_labels = False  # without labels the KL alone trains (the paper's semi-supervised use)
    perturbs = False

    @dataclass
    class Config:
        alpha: float = 1.0  # weight of 1/2 (KL(P1 || P2) + KL(P2 || P1)); the paper tries 0.1 to 1 on GLUE

        def validate(self) -> None:
            if self.alpha < 0:
                raise ValueError(f"alpha must be >= 0, not {self.alpha}")

    def loss(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> tuple[Tensor, StepReport]:
        first = self.clean_forward(target, batch)
        started = time.perf_counter()
        second = target(batch)  # the same batch under fresh dropout masks: the regulariser's whole point
        mutual = target.divergence.mutual(first, second)
        task = None if first.loss is None else first.loss + second.loss
        mask = self.mask_of(batch, self.delta_shape(target, batch), batch["input_ids"].device)
        report = self.report(target, first.loss, mutual, None, None, mask, started)
        return total_loss(task, [self.config.alpha * mutual]), report
