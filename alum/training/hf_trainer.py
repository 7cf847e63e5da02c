"""A drop-in for `transformers.Trainer` scripts: any core method in a couple of lines.

    from alum import AdversarialTrainer          # defined here, in alum.training.hf_trainer

    trainer = AdversarialTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
                                 adversarial="smart", adversarial_options={"alpha": 1.0})
    trainer.train()

`training_step` has the method compute each micro-batch's loss and backpropagates it with the Trainer's own
backward (`accelerator.backward`; FreeLB and YOPO are lent it, for a backward per pass), so mixed precision,
gradient accumulation, clipping, the optimizer and the schedule stay the Trainer's. Every loss a method builds
is a per-micro-batch mean (the task loss from the model's own forward, or the mean over a tagger's labelled
words; the adversarial terms, taken per distribution the head predicts: `head_forwards.default_forward`), so
it is divided by the accumulation steps, the Trainer's rule for such losses; `num_items_in_batch` is not
passed to the model, which would scale the task loss alone. After each optimizer step the method hears of it
(SMART's momentum teacher moves). The adversarial loss, the norm of delta and the skipped count are added to
the Trainer's logs. The method's state (SMART's teacher, the skipped count) is saved in every checkpoint
beside the optimizer's, as `alum_method.pt`, and comes back with `train(resume_from_checkpoint=...)`: a
resumed run ends as an uninterrupted one.

Limits: FreeAT takes optimizer steps inside a batch, which the Trainer owns, so it is refused; the methods
that call backward once per pass (FreeLB, YOPO) are refused under DeepSpeed, where accelerate steps the
engine inside every backward. Everything else works wherever the Trainer does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from alum.adversarial import ForwardOutput, Method, StepReport, Target, build_method, mean_reports
from alum.errors import UserError
from alum.training.head_forwards import default_forward

METHOD_STATE = "alum_method.pt"  # in each checkpoint folder, beside the optimizer's state


class AdversarialTrainer(Trainer):
    def __init__(self, *args, adversarial: str = "smart", adversarial_options: dict[str, Any] | None = None,
                 adversarial_forward: Callable[[nn.Module, dict[str, Any]], ForwardOutput] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method: Method = build_method(adversarial, adversarial_options, source="AdversarialTrainer")
        if self.method.optimizer_steps:
            raise UserError(f"AdversarialTrainer: '{adversarial}' takes an optimizer step on every replay of a "
                            "batch, which transformers.Trainer owns; use `alum finetune --method freeat` instead")
        if self.method.backward_passes > 1 and self.is_deepspeed_enabled:
            raise UserError(f"AdversarialTrainer: '{adversarial}' calls backward once per pass, and under DeepSpeed "
                            "accelerate steps the optimizer inside every backward; use a single-pass method")
        _non_reentrant_checkpointing(self.args, adversarial)
        self.adversarial_forward = adversarial_forward or default_forward(self.model)
        config = getattr(self.model, "config", None)
        regression = config is not None and (config.problem_type == "regression" or config.num_labels == 1)
        self.target = Target(self.model, self._forward, divergence="mse" if regression else "kl")
        self._reports: list[StepReport] = []
        self._wrapped_forward_due = True
        self._resumed_from: str | None = None  # the checkpoint whose method state comes back once set up
        self.add_callback(_MethodHooks(self))

    def _forward(self, model: nn.Module, batch: dict[str, Any]) -> ForwardOutput:
        # DDP expects one forward through its wrapper per backward: with find_unused_parameters (the
        # Trainer's default) it marks ready whatever that forward's graph missed, so a later pass cut
        # below the embeddings (ALUM, SMART) would have the embeddings marked twice. The first student
        # pass after each backward goes through the wrapper; the ascent and adversarial passes run the bare
        # module, whose parameters are the same, so their gradients join the one all-reduce. SMART's
        # teacher, a plain copy, always runs as it is.
        if model is self.model and self.model_wrapped is not None and self._wrapped_forward_due:
            model, self._wrapped_forward_due = self.model_wrapped, False
        return self.adversarial_forward(model, batch)

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None) -> torch.Tensor:
        """One micro-batch. The optimizer step is the Trainer's, after the accumulation's last micro-batch;
        the method hears of it in `_MethodHooks.on_step_end`."""
        model.train()
        inputs = self._prepare_inputs(inputs)
        self._wrapped_forward_due = True
        backward = _Backward(self)
        if self.method.calls_backward:  # FreeLB, YOPO: a backward per pass, each through `backward`
            with self.compute_loss_context_manager():
                report = self.method.step(self.target, inputs, backward)
        else:
            with self.compute_loss_context_manager():
                loss, report = self.method.loss(self.target, inputs, backward)  # the forward and the adversarial part
            backward.backward(loss)
        self._reports.append(report)
        loss = report.loss if report.loss is not None else 0.0
        return torch.tensor(loss / self._accumulation(), device=self.args.device)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:  # the method's state is the same on every process
            torch.save(self.method.state_dict(), os.path.join(output_dir, METHOD_STATE))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        self._resumed_from = checkpoint  # loaded once the method is set up for the run (on_train_begin)

    def _load_method_state(self) -> None:
        checkpoint, self._resumed_from = self._resumed_from, None
        path = os.path.join(checkpoint, METHOD_STATE)
        if os.path.isfile(path):
            self.method.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif set(self.method.state_dict()) - {"skipped_total"}:  # a method whose state matters
            raise UserError(f"{checkpoint}: no {METHOD_STATE} (written by another trainer or an older alum): "
                            f"'{self.method.name}' cannot resume its state from it; start the run again")

    def _accumulation(self) -> int:
        return getattr(self, "current_gradient_accumulation_steps", None) or self.args.gradient_accumulation_steps

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._reports and "loss" in logs:  # training logs only, not evaluation ones
            means = mean_reports(self._reports)
            logs.update({k: v for k, v in means.items() if k not in ("loss", "adv_skipped", "adv_seconds")})
            logs["adv_skipped"] = self.method.skipped_total
            self._reports = []
        super().log(logs, *args, **kwargs)


def _non_reentrant_checkpointing(args, method: str) -> None:
    """With the Trainer's gradient checkpointing on, make it the non-reentrant kind. The methods' ascent takes
    `torch.autograd.grad` with respect to delta, which reentrant checkpointing refuses (and transformers 4
    defaulted to reentrant); one the user asked for by name is refused here, in one line, not mid-step."""
    # transformers 5.25 renamed the arguments (the old names are aliases); 4.x has only the old ones
    on = getattr(args, "activation_checkpointing", None) or getattr(args, "gradient_checkpointing", False)
    name = "activation_checkpointing_kwargs" if hasattr(args, "activation_checkpointing_kwargs") \
        else "gradient_checkpointing_kwargs"
    kwargs = dict(getattr(args, name, None) or {})
    if not on or method == "none":
        return
    if kwargs.get("use_reentrant"):
        raise UserError(f"AdversarialTrainer: '{method}' takes gradients with respect to its perturbation, which "
                        f"reentrant checkpointing cannot give: drop use_reentrant from {name}")
    setattr(args, name, {**kwargs, "use_reentrant": False})


class _Backward:
    """What the method is lent: the Trainer's backward, scaled for gradient accumulation as the Trainer's own
    training_step scales it, and the loss scale that backward applies under fp16."""

    def __init__(self, trainer: AdversarialTrainer):
        self.trainer = trainer

    def backward(self, loss: torch.Tensor) -> None:
        from accelerate.utils import DistributedType

        t = self.trainer
        kwargs = {}
        if t.accelerator.distributed_type == DistributedType.DEEPSPEED:
            kwargs["scale_wrt_gas"] = False  # as Trainer.training_step: the division below is the only one
        if t.args.n_gpu > 1:
            loss = loss.mean()
        t.accelerator.backward(loss / t._accumulation(), **kwargs)
        t._wrapped_forward_due = True

    def optimizer_step(self) -> None:
        raise RuntimeError("transformers.Trainer owns the optimizer step")  # FreeAT is refused at construction

    def loss_scale(self) -> float:
        scaler = self.trainer.accelerator.scaler  # fp16 under torch amp; None otherwise
        return 1.0 if scaler is None else float(scaler.get_scale())


class _MethodHooks(TrainerCallback):
    """Tells the method how long the run is, and when the optimizer has stepped."""

    def __init__(self, trainer: AdversarialTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.method.setup(self.trainer.target, state.max_steps)
        if self.trainer._resumed_from is not None:
            self.trainer._load_method_state()

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.method.on_optimizer_step(self.trainer.target, state.global_step)
