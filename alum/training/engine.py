"""The DeepSpeed engine every stage trains with, and the adapter that lends it to a perturbation method."""

from __future__ import annotations

import torch
from torch import nn

from alum.adversarial import Method, StepReport, Target
from alum.training import deepspeed_internals, deepspeed_ops, distributed
from alum.training.deepspeed_config import EngineConfig, deepspeed_config
from alum.training.optim import OptimConfig, build_optimizer, lr_lambda


def build_engine(model: nn.Module, optim: OptimConfig, engine: EngineConfig, total_updates: int):
    """A DeepSpeed engine around `model` with our AdamW and warmup/decay schedule."""
    distributed.ensure_launch_env()
    import deepspeed

    deepspeed_ops.skip_shared_memory_comm()
    if not torch.distributed.is_initialized():
        backend = distributed.backend()
        deepspeed.init_distributed(**({"dist_backend": backend} if backend else {}))
    ds = deepspeed_config(engine, optim)
    optimizer = build_optimizer(model, optim, ds)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(optim, total_updates))
    ds_engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds)
    if distributed.world_size() == 1 and not ds_engine.zero_optimization():
        deepspeed_internals.skip_self_allreduce(ds_engine)
    return ds_engine


class EngineTrainer:
    """One optimizer update over a list of micro-batches on the engine (`update`), and what a method is lent of
    it: the backward, the optimizer step, the loss scale.

    Gradient-accumulation boundaries are set explicitly: only the last backward before an optimizer step
    is a boundary, so methods that call backward several times per micro-batch (FreeLB, YOPO) have ZeRO
    reduce the summed gradient once. A non-finite loss is not backpropagated (on any rank: the decision is
    collective, or ZeRO's collectives would hang); an update whose every backward was dropped is skipped.
    """

    def __init__(self, engine, method: Method, target: Target):
        self.engine, self.method, self.target = engine, method, target
        self.bad_losses = 0  # micro-batch losses dropped for being non-finite, over the run
        self._last_micro = False
        self._passes = 0
        self._backwards = 0

    @property
    def passes_per_update(self) -> int:
        return 1 if self.method.optimizer_steps else self.method.backward_passes

    def update(self, batches: list[dict[str, torch.Tensor]]) -> tuple[list[StepReport], bool]:
        """The reports of the micro-batches, and whether the weights moved. DeepSpeed's rhythm: a backward and
        an `engine.step()` per micro-batch; the step updates the weights at the last one only."""
        reports, stepped = [], False
        for i, batch in enumerate(batches):
            self._last_micro, self._passes = i == len(batches) - 1, 0
            if self.method.calls_backward:  # FreeLB, YOPO: a backward per pass; FreeAT: and a step per replay
                reports.append(self.method.step(self.target, batch, self))
            else:
                loss, report = self.method.loss(self.target, batch, self)  # the forward and the adversarial part
                self.backward(loss)
                reports.append(report)
            if self.method.optimizer_steps:
                stepped = True  # FreeAT stepped on every replay
            else:
                stepped |= self.optimizer_step()
        return reports, stepped

    def backward(self, loss: torch.Tensor) -> None:
        self._passes += 1
        boundary = self._last_micro and self._passes % self.passes_per_update == 0
        if distributed.any_rank(not bool(torch.isfinite(loss.detach())), loss.device):
            self.bad_losses += 1
            if not (boundary and self._backwards):
                return
            # Earlier micro-batches of this update hold gradients that must still be reduced and applied:
            # close the accumulation window with a backward that adds exactly zero to every parameter.
            loss = sum(p.sum() for p in self.engine.module.parameters() if p.requires_grad) * 0.0
        self.engine.set_gradient_accumulation_boundary(boundary)
        deepspeed_internals.new_backward(self.engine)
        self.engine.backward(loss)
        self._backwards += 1

    def optimizer_step(self) -> bool:
        """`engine.step()` after a micro-batch's (or, for FreeAT, a replay's) backwards; whether it moved the
        weights, after which the method hears of the update (SMART's teacher follows)."""
        at_boundary = self._last_micro and self._passes % self.passes_per_update == 0
        if at_boundary and self._backwards == 0:
            return False  # every loss of this update was non-finite: skip the update entirely
        # `backward` sets the boundary, but a dropped (non-finite) backward sets nothing: the flag would still
        # say True from the last update, and DeepSpeed would step the optimizer on no gradients mid-window.
        self.engine.set_gradient_accumulation_boundary(at_boundary)
        outcome = deepspeed_internals.step(self.engine)
        if outcome == "accumulated":
            return False
        self._backwards = 0  # a skipped update closes the window too
        if outcome == "skipped":  # SMART's teacher must not follow weights that did not move
            return False
        self.method.on_optimizer_step(self.target, self.engine.global_steps)
        return True

    def loss_scale(self) -> float:
        """The scale `engine.backward` multiplies the loss by: the fp16 optimizer's current one."""
        return deepspeed_internals.loss_scale(self.engine)
