"""The DeepSpeed engine every stage trains with, and the adapter that lends it to a perturbation method.

Our YAML owns the optimizer, the schedule, batch sizes and precision; a DeepSpeed JSON (configs/deepspeed/)
owns ZeRO and offload. Values the JSON leaves out or sets to "auto" are filled from the YAML; a value set
in both places and different is an error, so no run trains with settings nobody chose.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from alum.adversarial import Method, StepReport, Target
from alum.errors import UserError
from alum.presets import preset
from alum.training import distributed


@dataclass
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup: int | float = 0.06  # optimizer updates, or a fraction of them
    schedule: Literal["linear", "cosine", "constant"] = "linear"  # decay after warmup, to 0 at the end
    clip: float = 1.0  # gradient-norm clipping; 0 = off

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if len(self.betas) != 2:
            raise ValueError("betas must be two numbers")


@dataclass
class EngineConfig:
    deepspeed: str | None = None  # a DeepSpeed JSON (ZeRO stage, offload); none = ZeRO stage 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    micro_batch_size: int = 8  # per process
    grad_accum: int = 1

    def validate(self) -> None:
        if self.micro_batch_size < 1 or self.grad_accum < 1:
            raise ValueError("micro_batch_size and grad_accum must be at least 1")


def zero_stage(engine: EngineConfig, optim: OptimConfig) -> int:
    return deepspeed_config(engine, optim).get("zero_optimization", {}).get("stage", 0)


def deepspeed_config(engine: EngineConfig, optim: OptimConfig) -> dict[str, Any]:
    """The DeepSpeed config dict: the JSON (if any) completed from our YAML."""
    ds: dict[str, Any] = {}
    source = "deepspeed config"
    if engine.deepspeed:
        source = engine.deepspeed
        path = preset("deepspeed", engine.deepspeed, key="engine.deepspeed")
        if not path.is_file():
            raise UserError(f"deepspeed config '{path}' not found")
        try:
            ds = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise UserError(f"{source}: remove '{key}'; alum sets it from the optim section of its config")

    def fill(key: str, ours: Any) -> None:
        theirs = ds.get(key, "auto")
        if theirs not in ("auto", ours):
            raise UserError(f"{source}: '{key}' is {theirs} but the alum config says {ours}; set it in one place")
        ds[key] = ours

    fill("train_micro_batch_size_per_gpu", engine.micro_batch_size)
    fill("gradient_accumulation_steps", engine.grad_accum)
    fill("gradient_clipping", optim.clip)
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from the two above and the world size
    for kind in ("bf16", "fp16"):
        wanted = engine.precision == kind
        section = ds.setdefault(kind, {})
        enabled = section.get("enabled", "auto")
        if enabled not in ("auto", wanted):
            raise UserError(f"{source}: '{kind}.enabled' is {enabled} but the alum config says precision={engine.precision}")
        section["enabled"] = wanted
    ds.setdefault("zero_optimization", {"stage": 0})
    ds.setdefault("steps_per_print", 10**12)  # we log ourselves
    ds.setdefault("wall_clock_breakdown", False)
    return ds


def warmup_updates(optim: OptimConfig, total_updates: int) -> int:
    w = optim.warmup
    return int(w) if isinstance(w, int) else int(round(w * total_updates))


def lr_lambda(optim: OptimConfig, total_updates: int):
    warmup = warmup_updates(optim, total_updates)

    def factor(update: int) -> float:
        if update < warmup:
            return (update + 1) / (warmup + 1)
        if optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (update - warmup) / max(1, total_updates - warmup))
        if optim.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


def build_optimizer(model: nn.Module, optim: OptimConfig, ds: dict[str, Any]) -> torch.optim.Optimizer:
    # Biases and LayerNorm weights (every 1-d parameter) take no weight decay.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    offload = ds.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    if offload not in (None, "none"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(groups, fused=torch.cuda.is_available(), **kwargs)


def build_engine(model: nn.Module, optim: OptimConfig, engine: EngineConfig, total_updates: int):
    """A DeepSpeed engine around `model` with our AdamW and warmup/decay schedule."""
    distributed.ensure_launch_env()
    import deepspeed

    if not torch.distributed.is_initialized():
        backend = distributed.backend()
        deepspeed.init_distributed(**({"dist_backend": backend} if backend else {}))
    ds = deepspeed_config(engine, optim)
    optimizer = build_optimizer(model, optim, ds)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(optim, total_updates))
    ds_engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds)
    if distributed.world_size() == 1 and not ds_engine.zero_optimization():
        # Alone, DeepSpeed (0.19) still all-reduces every gradient with itself after each backward: 0.6 s of a
        # 3.6 s BERT-base step on a CPU, for nothing.
        ds_engine.enable_backward_allreduce = False
    return ds_engine


class EngineTrainer:
    """Lends a method the engine's backward and optimizer step for one update over a list of micro-batches.

    Gradient-accumulation boundaries are set explicitly: only the last backward before an optimizer step
    is a boundary, so methods that call backward several times per micro-batch (FreeLB, YOPO) have ZeRO
    reduce the summed gradient once. A non-finite loss is not backpropagated (on any rank: the decision is
    collective, or ZeRO's collectives would hang); an update whose every backward was dropped is skipped.
    """

    def __init__(self, engine, method: Method, target: Target):
        self.engine, self.method, self.target = engine, method, target
        self.fp16 = engine.fp16_enabled()
        if self.fp16:
            method.grad_scale = lambda: float(getattr(engine.optimizer, "cur_scale", 1.0))
        self.bad_losses = 0  # micro-batch losses dropped for being non-finite, over the run
        self._last_micro = False
        self._passes = 0
        self._backwards = 0

    @property
    def passes_per_update(self) -> int:
        return 1 if self.method.optimizer_steps else self.method.backward_passes

    def update(self, batches: list[dict[str, torch.Tensor]]) -> tuple[list[StepReport], bool]:
        """Run the method on every micro-batch and step; returns the reports and whether an update happened."""
        reports, stepped = [], False
        for i, batch in enumerate(batches):
            self._last_micro = i == len(batches) - 1
            self._passes = 0
            reports.append(self.method.step(self.target, batch, self))
            if not self.method.optimizer_steps:
                stepped |= self._step()
            else:
                stepped = True
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
        self._new_backward()
        self.engine.backward(loss)
        self._backwards += 1

    def _new_backward(self) -> None:
        """Tell ZeRO a new backward of the accumulation window begins.

        DeepSpeed (0.19) does this in `engine.forward()`, but methods run several forwards per backward, and
        the module directly; without it ZeRO-3 never advances its micro-step counter and *copies* each
        backward's gradient over the last one: only the final micro-batch of an update would count.
        Calling it once per backward gives exactly the counting DeepSpeed expects."""
        clear = getattr(self.engine.optimizer, "clear_backward_seen_flag", None)
        if clear is not None:
            clear()

    def optimizer_step(self) -> None:
        """Called by methods that step on every pass (FreeAT)."""
        self._step()

    def _step(self) -> bool:
        at_boundary = self._last_micro and self._passes % self.passes_per_update == 0
        if at_boundary and self._backwards == 0:
            return False  # every loss of this update was non-finite: skip the update entirely
        before = self.engine.global_steps
        self.engine.step()
        if self.engine.global_steps == before:
            return False
        self._backwards = 0
        self.method.on_optimizer_step(self.target, self.engine.global_steps)
        return True
