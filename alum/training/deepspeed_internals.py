"""Every part of DeepSpeed that alum relies on beyond its public engine API, each named once, with why.

DeepSpeed moves such things between releases without notice (its stage-0 fp16 optimizer keeps the loss scale
as `loss_scale` only, while the ZeRO ones also have `cur_scale`). `tests/unit/training/test_deepspeed_internals.py`
builds tiny engines against the installed DeepSpeed and checks that each still exists and does what is relied on
here, so an upgrade that changes one fails that test instead of training a run quietly wrong.

The public API used elsewhere, not listed: `deepspeed.initialize`, `init_distributed`, `zero.GatheredParameters`,
`ops.adam.DeepSpeedCPUAdam`, and on the engine `module`, `backward`, `step`, `was_step_applied`,
`set_gradient_accumulation_boundary`, `fp16_enabled`, `zero_optimization(_stage)`, `get_lr`, `save_checkpoint`,
`load_checkpoint`, `destroy`.
"""

from __future__ import annotations

from typing import Any, Literal


def skip_self_allreduce(engine: Any) -> None:
    """Stop the engine all-reducing gradients after each backward (`enable_backward_allreduce`, a plain
    attribute). Alone and without ZeRO, DeepSpeed (0.19) still all-reduces every gradient with itself: 0.6 s of
    a 3.6 s BERT-base step on a CPU, for nothing. Only for a single process without ZeRO: ZeRO reduces in its
    own hooks, and several processes need the reduction."""
    engine.enable_backward_allreduce = False


def new_backward(engine: Any) -> None:
    """Tell a ZeRO optimizer that a new backward of the accumulation window begins (`clear_backward_seen_flag`).

    DeepSpeed does this in `engine.forward()`, but the methods run several forwards per backward, through the
    module directly; without it ZeRO-3 never advances its micro-step counter and *copies* each backward's
    gradient over the last one: only the final micro-batch of an update would count. Called once per backward
    it gives exactly the counting DeepSpeed expects. The other optimizers have no such flag."""
    clear = getattr(engine.optimizer, "clear_backward_seen_flag", None)
    if clear is not None:
        clear()


def loss_scale(engine: Any) -> float:
    """The factor `engine.backward` multiplies the loss by under fp16: the fp16 optimizer's `loss_scale`.

    Every fp16 optimizer DeepSpeed builds has it (stage 0's FP16_Optimizer and its unfused twin, ZeRO 1-2 and
    ZeRO-3); `cur_scale` is on the ZeRO ones only. Without fp16 nothing scales the loss."""
    return float(engine.optimizer.loss_scale) if engine.fp16_enabled() else 1.0


StepOutcome = Literal["accumulated", "applied", "skipped"]


def step(engine: Any) -> StepOutcome:
    """`engine.step()`, and what it did: "accumulated" (not a boundary: no update), "applied", or "skipped"
    (an update the optimizer refused: an fp16 overflow, or a non-finite gradient norm under ZeRO).

    `was_step_applied()` alone cannot tell a refused update from no update, and both must be told apart: a
    skipped update ends the accumulation window as an applied one does, but SMART's teacher must not follow
    weights that did not move, and the loop counts it skipped. The engine's `global_steps` counts every update,
    refused or not, and only updates."""
    before = engine.global_steps
    engine.step()
    if engine.global_steps == before:
        return "accumulated"
    return "applied" if engine.was_step_applied() else "skipped"


def mark_op_unbuildable(builder_name: str) -> None:
    """Keep DeepSpeed from building op `builder_name` (alum.training.deepspeed_ops.skip_shared_memory_comm says
    why for the one op this is used on). DeepSpeed builds an op only if its per-process table of compatible ops,
    `deepspeed.ops.__compatible_ops__` (a dict kept for the life of the process), says so: marking the op
    incompatible there is the switch."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder(builder_name)
    if builder is not None:  # accelerators other than the CPU have no such op
        deepspeed.ops.__compatible_ops__[builder.NAME] = False


def op_prebuilt(builder: Any) -> bool:
    """Whether DeepSpeed loads `builder`'s op as built at install time rather than compiling it on first use:
    the condition DeepSpeed's own loader checks, from `deepspeed.git_version_info`."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.git_version_info import accelerator_name, installed_ops

    return bool(installed_ops.get(builder.NAME, False)) and accelerator_name == get_accelerator().device_name()
