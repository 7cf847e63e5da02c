"""Pretraining in bf16 and fp16 on one GPU: across the switch to ALUM, losses and ascent gradients stay
finite or are counted as skipped; an fp16 overflow is a skipped update that leaves SMART's teacher alone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from alum.adversarial import Target, build_method
from alum.pretrain import train as pretrain_train
from alum.training.deepspeed_config import EngineConfig
from alum.training.engine import EngineTrainer, build_engine
from alum.training.metrics import read_metrics
from alum.training.optim import OptimConfig
from support.models import make_batch, mlm_forward, tiny_mlm
from support.paths import SAMPLE
from support.pretrain import tiny_config

pytestmark = pytest.mark.gpu


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_pretraining_crosses_the_switch_in_reduced_precision(tmp_path, tokenizer_dir, precision):
    cfg = tiny_config(tmp_path, tokenizer_dir, SAMPLE, **{"engine.precision": precision, "max_steps": 8,
                                                          "adversarial.start_step": 4})
    pretrain_train.run(cfg)
    rows = [r for r in read_metrics(Path(cfg.output) / "metrics.jsonl") if "phase" in r]  # log_every=1
    assert [r["phase"] for r in rows] == ["standard"] * 4 + ["adversarial"] * 4
    assert all(finite(r["loss"]) for r in rows)
    adversarial = rows[4:]
    # one update per row: an ascent gradient that was not finite leaves no figure and is counted instead
    not_finite = sum(not finite(r.get("grad_norm_delta")) for r in adversarial)
    assert adversarial[-1]["adv_skipped"] == not_finite
    assert all(finite(r["adv_loss"]) for r in adversarial if finite(r.get("grad_norm_delta")))
    assert not_finite < len(adversarial)  # at least one ALUM term was computed
    assert (Path(cfg.output) / "final" / "model.safetensors").is_file()


def test_an_fp16_overflow_is_a_skipped_update_that_leaves_smarts_teacher_alone(tmp_path):
    # A loss scale of 2^32 overflows any fp16 gradient: DeepSpeed must skip the update, and the loop must
    # not report it as taken (pretraining counts it in `skipped_updates`) nor move SMART's teacher.
    config = tmp_path / "fp16.json"
    config.write_text(json.dumps({"fp16": {"initial_scale_power": 32, "hysteresis": 1}}))
    engine = build_engine(tiny_mlm("bert"), OptimConfig(lr=1e-3, warmup=0),
                          EngineConfig(deepspeed=str(config), precision="fp16", micro_batch_size=4), total_updates=10)
    target = Target(engine.module, mlm_forward)
    method = build_method("smart")
    method.setup(target, total_updates=10)
    trainer = EngineTrainer(engine, method, target)
    before = [p.detach().clone() for p in engine.module.parameters()]
    batch = {k: v.to(engine.device) for k, v in make_batch(0, mlm=True).items()}

    reports, stepped = trainer.update([batch])

    assert engine.skipped_steps == 1  # DeepSpeed saw the overflow
    assert not stepped
    assert method.teacher is not None and method.teacher.updates == 0
    assert all(torch.equal(a, b) for a, b in zip(before, engine.module.parameters()))
    assert reports[0].skipped == method.skipped_total  # a non-finite ascent gradient, if any, is counted
    engine.destroy()
