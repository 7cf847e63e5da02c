"""The fp16 half of tests/unit/training/test_deepspeed_internals.py: DeepSpeed's fp16 engines (which need CUDA)
keep the loss scale where alum reads it, and an overflow is an update counted and reported skipped."""

from __future__ import annotations

import json

import pytest
import torch

from alum.training import deepspeed_internals
from alum.training.deepspeed_config import EngineConfig
from alum.training.engine import build_engine
from alum.training.optim import OptimConfig
from support.models import classification_forward, make_batch, tiny_classifier

pytestmark = pytest.mark.gpu


def fp16_engine(tmp_path, stage: int, fp16: dict):
    config = tmp_path / f"fp16-zero{stage}.json"
    config.write_text(json.dumps({"fp16": fp16, "zero_optimization": {"stage": stage}}))
    return build_engine(tiny_classifier("bert"), OptimConfig(warmup=0),
                        EngineConfig(deepspeed=str(config), precision="fp16", micro_batch_size=4), total_updates=4)


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_the_loss_scale_is_read_where_every_fp16_optimizer_keeps_it(tmp_path, stage):
    engine = fp16_engine(tmp_path, stage, {"loss_scale": 1024})
    assert deepspeed_internals.loss_scale(engine) == 1024
    engine.destroy()


@pytest.mark.parametrize("stage", [0, 2])
def test_an_fp16_overflow_is_an_update_counted_and_reported_skipped(tmp_path, stage):
    engine = fp16_engine(tmp_path, stage, {"loss_scale": 0, "initial_scale_power": 8})
    scale = deepspeed_internals.loss_scale(engine)
    batch = {k: v.cuda() for k, v in make_batch(4).items()}
    before = [p.detach().clone() for p in engine.module.parameters()]
    engine.set_gradient_accumulation_boundary(True)
    engine.backward(classification_forward(engine.module, batch).loss * float("inf"))
    assert deepspeed_internals.step(engine) == "skipped" and engine.global_steps == 1
    assert all(torch.equal(a, p) for a, p in zip(before, engine.module.parameters()))
    assert deepspeed_internals.loss_scale(engine) < scale
    engine.destroy()
