"""The DeepSpeed config a run trains with.

Our YAML owns the optimizer, the schedule, batch sizes and precision; a DeepSpeed JSON (configs/deepspeed/)
owns ZeRO and offload. Values the JSON leaves out or sets to "auto" are filled from the YAML; a value set
in both places and different is an error, so no run trains with settings nobody chose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from alum.errors import UserError
from alum.presets import preset
from alum.training.optim import OptimConfig


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


def check_precision(precision: str) -> None:
    """DeepSpeed's fp16 needs a CUDA device; without one it fails deep inside `deepspeed.initialize`, after
    the data is tokenised and the model built. Say so here, where every stage asks for its config first.
    bf16 runs on the CPU (DeepSpeed's CPU accelerator supports it), so only fp16 is refused."""
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise UserError("engine.precision=fp16 needs a CUDA GPU and none is available: "
                        "use engine.precision=fp32 (or bf16) on this machine")


def deepspeed_config(engine: EngineConfig, optim: OptimConfig) -> dict[str, Any]:
    """The DeepSpeed config dict: the JSON (if any) completed from our YAML."""
    check_precision(engine.precision)
    ds: dict[str, Any] = {}
    source = "deepspeed config"
    if engine.deepspeed:
        source = engine.deepspeed
        path = preset("deepspeed", engine.deepspeed, key="engine.deepspeed")
        if not path.is_file():
            raise UserError(f"deepspeed config '{path}' not found")
        try:
            ds = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path}: not a text file (a DeepSpeed JSON config is expected)") from None
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
        if not isinstance(ds, dict):
            raise UserError(f"{path}: a DeepSpeed config is a JSON object, not a {type(ds).__name__}")
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
    stage = ds["zero_optimization"].get("stage", 0) if isinstance(ds["zero_optimization"], dict) else None
    if stage not in (0, 1, 2, 3):
        raise UserError(f"{source}: 'zero_optimization.stage' must be 0, 1, 2 or 3, not {stage!r}")
    ds.setdefault("steps_per_print", 10**12)  # we log ourselves
    ds.setdefault("wall_clock_breakdown", False)
    return ds
