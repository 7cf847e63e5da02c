"""The optimizer and learning-rate schedule every stage trains with: AdamW (DeepSpeed's CPU Adam under
optimizer offload), linear warmup, then linear, cosine or no decay."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from alum.training import deepspeed_ops

if TYPE_CHECKING:
    import torch
    from torch import nn


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
        if self.warmup < 0 or (isinstance(self.warmup, float) and self.warmup > 1):
            raise ValueError("warmup must be a number of updates (>= 0) or a fraction in [0, 1]")
        if self.weight_decay < 0 or self.eps <= 0 or self.clip < 0:
            raise ValueError("weight_decay and clip must be >= 0 and eps > 0")


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
    import torch  # here, not at the top: OptimConfig is a schema the configs load without torch

    # Biases and LayerNorm weights (every 1-d parameter) take no weight decay.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    offload = ds.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    if offload not in (None, "none"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        offloading = "optimizer offload (zero_optimization.offload_optimizer in the DeepSpeed config)"
        deepspeed_ops.require_op("CPUAdamBuilder", offloading)
        return DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(groups, fused=torch.cuda.is_available(), **kwargs)
