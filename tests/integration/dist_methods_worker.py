"""Run by tests/integration/test_distributed.py under `launch/local.sh 2`: for one ZeRO stage, train every core
method for two updates on a tiny dropout-free model and save the weights (rank 0), or the refusal message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from alum.adversarial import METHODS, Target, build_method
from alum.errors import UserError
from alum.training import distributed
from alum.training.deepspeed_config import EngineConfig
from alum.training.engine import EngineTrainer, build_engine
from alum.training.optim import OptimConfig


def main(out: Path) -> None:
    for stage in (0, 1, 2, 3):  # one launch for every stage: process start-up is the expensive part
        run_stage(stage, out)


def run_stage(stage: int, out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
    from support.models import classification_forward, make_batch, tiny_classifier

    results = {}
    for name in METHODS:
        model = tiny_classifier("bert", seed=0)
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        ds_path = out / f"zero{stage}-rank{distributed.rank()}.json"
        ds_path.write_text(json.dumps({"zero_optimization": {"stage": stage}}))
        method = build_method(name)
        accum = 1 if method.optimizer_steps else 2  # FreeAT steps on every replay: no accumulation
        engine = build_engine(model, OptimConfig(lr=1e-2, warmup=0, schedule="constant"),
                              EngineConfig(deepspeed=str(ds_path), micro_batch_size=2, grad_accum=accum), total_updates=10)
        target = Target(engine.module, classification_forward)
        torch.manual_seed(1)
        try:
            method.setup(target, total_updates=10)  # SMART refuses ZeRO-3 here
            trainer = EngineTrainer(engine, method, target)
            for update in range(2):
                # each rank its own micro-batches: global batch 2 ranks x 2 micro-batches x 2 rows
                rank = distributed.rank()
                trainer.update([make_batch(100 * update + 10 * rank + i, batch=2) for i in range(accum)])
        except UserError as err:
            results[name] = {"refused": str(err)}
            continue
        import deepspeed

        params = list(engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params, enabled=stage == 3):
            weights = {n: p.detach().float().clone() for n, p in engine.module.named_parameters()}
        if distributed.is_main():
            torch.save(weights, out / f"zero{stage}-{name}.pt")
        results[name] = {"ok": True}
        del engine
    if distributed.is_main():
        (out / f"zero{stage}-results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
