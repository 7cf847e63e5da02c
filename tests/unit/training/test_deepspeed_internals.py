"""Each DeepSpeed internal alum relies on (alum/training/deepspeed_internals.py), checked against the installed
DeepSpeed on tiny real engines on the CPU: it still exists and still does what alum relies on. A DeepSpeed
upgrade that moves one fails here. The fp16 ones need a GPU: tests/gpu/test_deepspeed_fp16_internals.py."""

from __future__ import annotations

import copy
import importlib
import inspect

import pytest
import torch

from alum.training import deepspeed_internals
from alum.training.deepspeed_config import EngineConfig
from alum.training.engine import build_engine
from alum.training.optim import OptimConfig
from support.models import classification_forward, make_batch, tiny_classifier

# No warmup and no decay: the first update runs at the full rate, so a reference AdamW can repeat it.
OPTIM = OptimConfig(lr=1e-2, warmup=0, schedule="constant", clip=1.0)


def engine_for(model, stage: int, grad_accum: int = 1):
    return build_engine(model, OPTIM, EngineConfig(deepspeed=f"zero{stage}", micro_batch_size=4, grad_accum=grad_accum),
                        total_updates=10)


def loss_of(module, batch):
    return classification_forward(module, batch).loss


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_optimizers_have_the_backward_seen_flag_that_the_engines_forward_clears(stage, monkeypatch):
    """new_backward stands in for what `engine.forward()` does; alum's forwards run the module directly."""
    engine = engine_for(tiny_classifier("bert"), stage)
    assert callable(engine.optimizer.clear_backward_seen_flag)
    cleared = []
    monkeypatch.setattr(engine.optimizer, "clear_backward_seen_flag", lambda: cleared.append("cleared"))
    engine(**make_batch(4))
    assert cleared == ["cleared"]
    deepspeed_internals.new_backward(engine)
    assert cleared == ["cleared", "cleared"]
    engine.destroy()


def test_under_zero3_two_backwards_of_one_window_add_up_only_when_each_is_announced():
    """Why new_backward exists: with the module run directly, ZeRO-3 sums a window's backwards as one plain
    backward of the summed losses would, only if each backward is announced."""
    model, first, second = tiny_classifier("bert").train(), make_batch(4), make_batch(5)
    reference = copy.deepcopy(model)
    torch.manual_seed(0)
    engine = engine_for(model, stage=3, grad_accum=2)
    for boundary, batch in ((False, first), (True, second)):
        engine.set_gradient_accumulation_boundary(boundary)
        deepspeed_internals.new_backward(engine)
        torch.manual_seed(1)
        engine.backward(loss_of(engine.module, batch))
    assert deepspeed_internals.step(engine) == "applied"

    # the same update by hand: the mean of the two losses, clipped, one AdamW step
    optimizer = torch.optim.AdamW(reference.parameters(), lr=OPTIM.lr, betas=OPTIM.betas, eps=OPTIM.eps,
                                  weight_decay=OPTIM.weight_decay)
    for batch in (first, second):
        torch.manual_seed(1)
        (loss_of(reference, batch) / 2).backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), OPTIM.clip)
    optimizer.step()
    import deepspeed

    params = list(engine.module.parameters())
    with deepspeed.zero.GatheredParameters(params):
        for (name, trained), expected in zip(engine.module.named_parameters(), reference.parameters()):
            torch.testing.assert_close(trained, expected, atol=1e-5, rtol=1e-4, msg=name)
    engine.destroy()


def test_a_lone_engine_without_zero_skips_its_all_reduce_by_the_switch(monkeypatch):
    engine = engine_for(tiny_classifier("bert"), stage=0)
    assert engine.enable_backward_allreduce is False  # build_engine threw the switch: one process, no ZeRO
    reduced = []
    monkeypatch.setattr(engine, "allreduce_gradients", lambda *a, **k: reduced.append("reduced"))
    batch = make_batch(4)
    engine.backward(loss_of(engine.module, batch))
    assert reduced == []
    engine.enable_backward_allreduce = True  # DeepSpeed's default: the switch is what skips it
    engine.backward(loss_of(engine.module, batch))
    assert reduced == ["reduced"]
    engine.destroy()


def test_step_tells_a_micro_step_from_an_applied_update():
    engine = engine_for(tiny_classifier("bert"), stage=0, grad_accum=2)
    batch = make_batch(4)
    before = [p.detach().clone() for p in engine.module.parameters()]
    engine.set_gradient_accumulation_boundary(False)
    engine.backward(loss_of(engine.module, batch))
    assert deepspeed_internals.step(engine) == "accumulated"
    assert all(torch.equal(a, p) for a, p in zip(before, engine.module.parameters()))
    engine.set_gradient_accumulation_boundary(True)
    engine.backward(loss_of(engine.module, batch))
    assert deepspeed_internals.step(engine) == "applied" and engine.global_steps == 1
    assert not all(torch.equal(a, p) for a, p in zip(before, engine.module.parameters()))
    engine.destroy()


@pytest.mark.parametrize("stage", [1, 2])
def test_an_update_the_optimizer_refuses_is_counted_and_reported_skipped(stage):
    """ZeRO refuses an update whose gradient norm is not finite, as fp16 refuses an overflow: `global_steps`
    still counts it and `was_step_applied()` says False; the weights stay."""
    engine = engine_for(tiny_classifier("bert"), stage)
    before = [p.detach().clone() for p in engine.module.parameters()]
    engine.set_gradient_accumulation_boundary(True)
    engine.backward(loss_of(engine.module, make_batch(4)) * float("nan"))
    assert deepspeed_internals.step(engine) == "skipped" and engine.global_steps == 1
    assert all(torch.equal(a, p) for a, p in zip(before, engine.module.parameters()))
    engine.destroy()


def test_every_fp16_optimizer_keeps_the_loss_scale_as_loss_scale():
    """What loss_scale reads. fp16 engines need a GPU; the property is on the classes."""
    from deepspeed.runtime.fp16.fused_optimizer import FP16_Optimizer
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer
    from deepspeed.runtime.zero.stage3 import DeepSpeedZeroOptimizer_Stage3
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    for cls in (FP16_Optimizer, FP16_UnfusedOptimizer, DeepSpeedZeroOptimizer, DeepSpeedZeroOptimizer_Stage3):
        assert isinstance(inspect.getattr_static(cls, "loss_scale", None), property), cls.__name__


def test_without_fp16_the_loss_scale_is_one():
    engine = engine_for(tiny_classifier("bert"), stage=2)
    assert deepspeed_internals.loss_scale(engine) == 1.0
    engine.destroy()


def test_the_op_tables_alum_reads_and_writes_are_where_deepspeed_reads_them(monkeypatch):
    import deepspeed.ops
    from deepspeed import git_version_info
    from deepspeed.accelerator import get_accelerator

    assert isinstance(git_version_info.installed_ops, dict) and isinstance(git_version_info.accelerator_name, str)
    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None:
        pytest.skip("this accelerator has no shared-memory op")
    assert deepspeed_internals.op_prebuilt(builder) is False  # a plain pip install prebuilds nothing
    deepspeed_internals.mark_op_unbuildable("ShareMemCommBuilder")
    assert deepspeed.ops.__compatible_ops__[builder.NAME] is False
    # DeepSpeed's communication set-up asks that table, and now builds nothing
    monkeypatch.setattr(type(builder), "load", lambda *a, **k: pytest.fail("DeepSpeed would compile the op"))
    comm_torch = importlib.import_module("deepspeed.comm.torch")
    assert comm_torch.build_shm_op() is None
