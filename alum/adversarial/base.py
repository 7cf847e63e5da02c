"""The interface every method implements, the report it returns, and the single-pass template most methods
fill in (the registry of methods by name is in `registry`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from alum.adversarial import ascent, dropout
from alum.adversarial import functional as AF
from alum.adversarial.target import ForwardOutput, Target
from alum.errors import UserError

log = logging.getLogger("alum")

# Below this cosine between delta and the change it made, most of delta was rounded away (in float32 the two
# agree to 1e-6; a half-precision rounding that keeps a coordinate with probability |delta| / spacing gives a
# cosine of about sqrt(|delta| / spacing)).
ROUNDED_AWAY = 0.5


class Trainer(Protocol):
    """What the training loop lends a method. The loop owns *how* backward and the optimizer step happen
    (plain autograd, a GradScaler, a DeepSpeed engine); the method decides how often."""

    def backward(self, loss: Tensor) -> None: ...

    def optimizer_step(self) -> None: ...

    def loss_scale(self) -> float:
        """The factor `backward` multiplies a loss by (fp16 loss scaling; 1.0 without). Ascent gradients that
        a method takes itself with autograd.grad are scaled alike, or small ones underflow in half precision,
        and unscaled before use. A loop that does not scale may leave this out: 1.0 is assumed."""
        return 1.0


def loss_scale(trainer: Trainer) -> float:
    scale = getattr(trainer, "loss_scale", None)
    return 1.0 if scale is None else float(scale())


@dataclass
class StepReport:
    """What one micro-batch did. `loss` is the clean task loss (None without labels)."""

    loss: float | None
    adv_loss: float | None = None
    delta_norm: float | None = None  # mean L2 norm of delta per real token
    grad_norm: float | None = None  # mean L2 norm of the ascent gradient per real token
    skipped: int = 0  # adversarial terms dropped for a non-finite ascent gradient
    # wall time spent on the adversarial part: ascent and adversarial forwards (and, for the methods that
    # call backward themselves, their passes' backwards)
    adv_seconds: float = 0.0
    # What reached the model: the change delta made to the site's output after the rounding of the precision
    # the model computes in (functional.effective_stats): its mean L2 norm per real token, the share of real
    # tokens it left exactly unchanged, its cosine to delta.
    delta_effective: float | None = None
    delta_lost: float | None = None
    delta_cosine: float | None = None


class Method:
    """Base class. A subclass sets `name`, `Config`, `needs_labels`, and implements `loss` (or, through
    `SinglePass`, only its adversarial term); a method that needs several backwards (or optimizer steps) per
    micro-batch implements `step` instead.

    `loss` is the forward and the adversarial part of one micro-batch (ascent on delta takes gradients w.r.t.
    delta only, never touching a parameter's .grad): it returns the loss the loop backpropagates once, and
    the report. `step` runs a whole micro-batch, calling `trainer.backward` itself: `backward_passes` times
    for the methods that accumulate over several passes (and `trainer.optimizer_step` for FreeAT).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    needs_labels: ClassVar[bool] = True
    perturbs: ClassVar[bool] = True  # adds a delta to the embeddings (`none` and `rdrop` do not)
    summary: ClassVar[str] = ""
    # The options that set delta's size, named when delta rounds away in the precision the model runs in.
    size_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self.skipped_total = 0
        self.last_delta: Tensor | None = None  # the final perturbation of the last step, for inspection
        self.warned_rounding = False

    # Passes and optimizer steps per micro-batch, for the loop's bookkeeping.
    @property
    def backward_passes(self) -> int:
        return 1

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps the method takes itself per batch (FreeAT); 0 means the loop steps once."""
        return 0

    def refusal(self, grad_accum: int, zero_stage: int) -> str | None:
        """Why the method cannot train under this engine set-up, or None: every stage and the Trainer drop-in
        ask here before any work. By default a method that steps the optimizer itself needs grad_accum 1."""
        if self.optimizer_steps and grad_accum != 1:
            return (f"engine.grad_accum: {self.name} takes an optimizer step on every replay of a batch, so it "
                    f"needs 1 (got {grad_accum})")
        return None

    def setup(self, target: Target, total_updates: int) -> None:
        """Called once before training, with the number of optimizer updates the run will make."""

    def on_optimizer_step(self, target: Target, update: int) -> None:
        """Called by the loop after every optimizer step (`update` counts from 1)."""

    def loss(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> tuple[Tensor, StepReport]:
        """The forward and the adversarial part of one micro-batch: the loss for the loop's one backward, and
        the report. `trainer` lends the loss scale of that backward (ascent gradients are taken at it)."""
        raise NotImplementedError

    @property
    def calls_backward(self) -> bool:
        """Whether the method calls `trainer.backward` itself (`step`) rather than returning its loss: the
        methods with several backwards per micro-batch, and any written against `step` alone."""
        return type(self).loss is Method.loss

    def step(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> StepReport:
        """One micro-batch, backward included (what a loop that lends its backward calls)."""
        loss, report = self.loss(target, batch, trainer)
        trainer.backward(loss)
        return report

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped_total = state["skipped_total"]

    @property
    def delta_is_zero(self) -> bool:
        """Whether the options make delta exactly zero (no perturbation is intended, so none is measured): by
        default, when every option that sizes delta is 0."""
        return bool(self.size_options) and all(getattr(self.config, o) == 0 for o in self.size_options)

    # Helpers shared by the methods.

    @property
    def site(self) -> str:
        """Where delta enters (see EmbeddingPerturbation): a method's `site` option, else the word embeddings."""
        return getattr(self.config, "site", "words")

    def delta_shape(self, target: Target, batch: dict[str, Tensor]) -> torch.Size:
        return target.perturbation.shape(batch["input_ids"], self.site)

    def clean_forward(self, target: Target, batch: dict[str, Tensor], delta: Tensor | None = None) -> ForwardOutput:
        if delta is None:
            out = target(batch)
        else:
            with target.perturbation.applied(delta, self.site):
                out = target(batch)
        if self.needs_labels and out.loss is None:
            raise UserError(f"method '{self.name}' needs labels, but the batch has none")
        return out

    def perturbed(self, target: Target, batch: dict[str, Tensor], delta: Tensor) -> ForwardOutput:
        with target.perturbation.applied(delta, self.site):
            return target(batch)

    def ascent_grad(self, objective: Tensor, delta: Tensor, trainer: Trainer,
                    retain_graph: bool = False) -> Tensor | None:
        """d objective / d delta at the trainer's loss scale, unscaled, touching no parameter's .grad; None if
        not finite (whoever drops the term for it counts the skip)."""
        return ascent.delta_grad(objective, delta, retain_graph, scale=loss_scale(trainer))

    def climb(self, delta: Tensor, objective: Callable[[Tensor], Tensor], update: Callable[[Tensor, Tensor], Tensor],
              mask: Tensor, trainer: Trainer, steps: int = 1, first: Tensor | None = None) -> ascent.Climbed:
        """`ascent.climb` with this method's `ascent_grad`, at the trainer's loss scale."""
        return ascent.climb(delta, objective, update, mask, steps,
                            lambda o, d, retain: self.ascent_grad(o, d, trainer, retain), first)

    @staticmethod
    def mask_of(batch: dict[str, Tensor], delta_shape: torch.Size, device: torch.device) -> Tensor:
        return AF.token_mask(batch.get("attention_mask"), delta_shape, device)

    def zeros(self, target: Target, batch: dict[str, Tensor]) -> Tensor:
        ids = batch["input_ids"]
        return torch.zeros(target.perturbation.shape(ids, self.site), device=ids.device, requires_grad=True)

    def report(
        self,
        target: Target,
        loss: Tensor | None,
        adv_loss: Tensor | None,
        delta: Tensor | None,
        grad: Tensor | None,
        mask: Tensor,
        started: float,
        skipped: bool = False,
    ) -> StepReport:
        measured = delta is not None and not self.delta_is_zero
        effective = target.perturbation.effective(delta, self.site) if measured else None
        dtype = target.perturbation.seen_dtype(self.site)
        target.perturbation.forget()
        report = StepReport(
            loss=None if loss is None else float(loss.detach()),
            adv_loss=None if adv_loss is None else float(adv_loss.detach()),
            delta_norm=None if delta is None else AF.mean_token_norm(delta.detach(), mask),
            grad_norm=None if grad is None else AF.mean_token_norm(grad, mask),
            skipped=int(skipped),
            adv_seconds=elapsed(started, mask.device),
        )
        if delta is not None:
            self.last_delta = delta.detach()
        if effective is not None:
            report.delta_effective, report.delta_lost, report.delta_cosine = AF.effective_stats(effective, delta, mask)
            self.check_rounding(report, dtype)
        return report

    def check_rounding(self, report: StepReport, dtype: torch.dtype | None) -> None:
        """Say once, in one line, when most of delta rounds away before the model sees it."""
        if self.warned_rounding or report.delta_cosine >= ROUNDED_AWAY:
            return
        self.warned_rounding = True
        options = " and ".join(f"adversarial.options.{self.name}.{o}" for o in self.size_options) or "its size"
        log.warning(f"{self.name}'s delta mostly rounds away in {str(dtype).removeprefix('torch.')} at the "
                    f"'{self.site}' site (cosine {report.delta_cosine:.2f} between delta and the change it made, "
                    f"{report.delta_lost:.0%} of tokens unchanged, |delta| {report.delta_norm:.2g} per token): "
                    f"raise {options}")


@dataclass
class CleanPass:
    """The clean pass of a single-pass step, as the method's terms see it."""

    out: ForwardOutput
    mask: Tensor  # (B, T, 1), 1 at real tokens: delta stays 0 at padding
    zero: Tensor | None  # the zero delta the pass ran with (`climbs_from_clean`), a leaf to differentiate by
    random_state: dropout.RandomState  # the streams before the pass: replaying them replays its dropout masks


class SinglePass(Method):
    """The template of every method with one backward per micro-batch. The base runs the clean forward, times
    the adversarial part, and returns for the loop's backward

        task loss + weight * adversarial term + extra terms

    with the report; the weight is the option that `weight_option` names. When the adversarial term is dropped (a
    non-finite ascent gradient), the step still trains on the rest, and the skip is counted. A subclass
    supplies `adversarial_term`, and `extra_terms` if it has terms that do not depend on delta.
    """

    # Run the clean pass with a zero delta attached: its loss's gradient w.r.t. delta is then the first ascent
    # gradient, for no extra forward.
    climbs_from_clean: ClassVar[bool] = False

    # The option that weighs the adversarial term, read under its own name (the papers' alpha for VAT, ALUM and
    # SMART; weight for the attacks); a method whose Config has no such option weighs the term 1.
    weight_option: ClassVar[str] = "weight"

    def adversarial_term(self, target: Target, batch: dict[str, Tensor], clean: CleanPass,
                         trainer: Trainer) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """(the unweighted term, its delta, the last ascent gradient or None if it took none); None drops
        the term for this batch."""
        raise NotImplementedError

    def extra_terms(self, target: Target, batch: dict[str, Tensor], clean: CleanPass) -> list[Tensor]:
        """Weighted loss terms that do not depend on delta, kept when the adversarial term is dropped."""
        return []

    def loss(self, target: Target, batch: dict[str, Tensor], trainer: Trainer) -> tuple[Tensor, StepReport]:
        device = batch["input_ids"].device
        random_state = dropout.capture(device)
        zero = self.zeros(target, batch) if self.climbs_from_clean else None
        out = self.clean_forward(target, batch, zero)
        started = time.perf_counter()
        clean = CleanPass(out, self.mask_of(batch, self.delta_shape(target, batch), device), zero, random_state)
        extra = self.extra_terms(target, batch, clean)
        weight = getattr(self.config, self.weight_option, 1.0)
        if weight == 0:  # a term weighted 0 moves no gradient: none of its passes is paid for
            return total_loss(out.loss, extra), self.report(target, out.loss, None, None, None, clean.mask, started)
        term = self.adversarial_term(target, batch, clean, trainer)
        if term is None:
            self.skipped_total += 1
            report = self.report(target, out.loss, None, None, None, clean.mask, started, skipped=True)
            return total_loss(out.loss, extra), report
        adv_loss, delta, grad = term
        report = self.report(target, out.loss, adv_loss, delta, grad, clean.mask, started)
        return total_loss(out.loss, [weight * adv_loss, *extra]), report


# The figures of a StepReport that are averaged over micro-batches in every stage's logs.
AVERAGED = ("loss", "adv_loss", "delta_norm", "grad_norm", "delta_effective", "delta_lost", "delta_cosine")


def mean_reports(reports: list[StepReport]) -> dict[str, float]:
    """The reports' figures, each averaged over the reports that have it (a figure none has is left out); the
    skipped terms and the adversarial seconds summed."""
    out: dict[str, float] = {}
    for key in AVERAGED:
        values = [getattr(r, key) for r in reports if getattr(r, key) is not None]
        if values:
            out[key] = sum(values) / len(values)
    out["adv_skipped"] = sum(r.skipped for r in reports)
    out["adv_seconds"] = sum(r.adv_seconds for r in reports)
    return out


def total_loss(task_loss: Tensor | None, terms: list[Tensor]) -> Tensor | None:
    """The task loss (None without labels) plus the terms, added in the order given: a float sum depends on
    its order."""
    if not terms:
        return task_loss
    total = sum(terms)
    return total if task_loss is None else task_loss + total


def elapsed(started: float, device: torch.device) -> float:
    """Seconds since `started`; waits for queued GPU work first, or the figure means nothing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
