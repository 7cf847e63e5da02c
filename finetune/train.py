"""One fine-tuning run: one model, one method, one seed. Reads top to bottom.

build the classifier -> DeepSpeed engine -> Target + method -> per update (EngineTrainer.update): the method's
loss on every micro-batch (forward, adversarial part), its backward, the engine's step -> dev evaluation every epoch (or `eval_every`),
the best state by the task metric kept -> the best state restored, evaluated clean and under attack.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from alum.adversarial import Method, Target, mean_reports
from alum.config import to_dict
from alum.training import distributed, rng
from alum.training.engine import EngineTrainer, build_engine
from alum.training.metrics import MetricsLog, progress_bar, say
from alum.finetune.data import Collator, Encoded
from alum.finetune.task_types import task_type
from alum.finetune.evaluate import evaluate
from alum.finetune.model import full_weights
from alum.finetune.prepare import Prepared


@dataclass
class SeedResult:
    method: str
    seed: int
    # dev metrics of the best checkpoint, clean and (`attack_*`) under attack; an extra dev set's prefixed
    # with its name (`mismatched_accuracy`)
    best: dict[str, float]
    best_update: int
    best_epoch: float
    updates: int
    seconds_per_update: float  # median wall time of an update (robust to other work on the machine)
    adv_seconds_per_update: float  # spent on the adversarial term (StepReport.adv_seconds: not the loop's backward)
    adv_skipped: int  # adversarial terms dropped for a non-finite ascent gradient
    initialised: list[str]  # weights the model directory did not hold (the new classification head)
    history: list[dict[str, float]] = field(default_factory=list)  # {"update", "epoch", dev metrics} per evaluation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedResult:
        """The inverse of to_dict (a result.json read back on resume); a missing field raises KeyError."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass
class Run:
    """One method ready to train: the engine around a fresh classifier, the Target and method, and the
    trainer that lends the engine to the method."""

    engine: Any
    target: Target
    method: Method
    trainer: EngineTrainer
    forward: Callable
    initialised: list[str]
    per_epoch: int  # updates per epoch
    total: int  # updates of the run


def build_run(prep: Prepared, method_name: str, seed: int) -> Run:
    cfg, task = prep.cfg, prep.task
    rng.seed_everything(seed)  # before the model: the new head is drawn from this seed
    kind = task_type(task)
    model, initialised = kind.load_model(prep.model_dir, task)
    if initialised:
        say(f"{prep.model_dir}: newly initialised (not in the directory): {', '.join(initialised)}")
    forward = kind.forward(model, task)
    method = cfg.adversarial.build(method_name)
    per_update = cfg.engine.micro_batch_size * cfg.engine.grad_accum * distributed.world_size()
    per_epoch = max(1, math.ceil(len(prep.train) / per_update))
    total = cfg.train.max_steps or cfg.train.epochs * per_epoch
    # FreeAT steps the optimizer on every replay: the schedule and SMART's teacher count those steps.
    optimizer_steps = total * max(1, method.optimizer_steps)
    engine = build_engine(model, cfg.optim, cfg.engine, optimizer_steps)
    target = Target(engine.module, forward, divergence=kind.divergence(task))
    method.setup(target, optimizer_steps)
    return Run(engine, target, method, EngineTrainer(engine, method, target), forward, initialised, per_epoch, total)


def train_seed(prep: Prepared, method_name: str, seed: int, out_dir: Path,
               on_best: Callable[[SeedResult, nn.Module], None] | None = None) -> SeedResult:
    cfg, task = prep.cfg, prep.task
    run = build_run(prep, method_name, seed)
    engine, trainer, forward, per_epoch, total = run.engine, run.trainer, run.forward, run.per_epoch, run.total
    collate = task_type(task).collator(prep.tokenizer, task)
    train_batches = batches_forever(prep.train, cfg.engine.micro_batch_size, seed, collate)
    dev_batches = DataLoader(prep.dev, batch_size=cfg.train.eval_batch_size, collate_fn=collate)
    grad_accum = cfg.engine.grad_accum

    wandb = dataclasses.replace(cfg.wandb, name=f"{cfg.wandb.name or task.name}-{method_name}-seed{seed}")
    log = MetricsLog(out_dir, wandb, {**to_dict(cfg), "method": method_name, "seed": seed})
    eval_every = cfg.train.eval_every or per_epoch
    best: dict[str, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_update, history, seconds, adv_seconds = 0, [], [], []
    bar = progress_bar(total, f"{method_name} seed {seed}")

    for update in range(1, total + 1):
        micro_batches = [to_device(next(train_batches), engine.device) for _ in range(grad_accum)]
        engine.train()
        started = time.perf_counter()
        # the step, in EngineTrainer.update: per micro-batch the forward and the adversarial part (the method's
        # loss) and the backward, then the optimizer step
        reports, _ = trainer.update(micro_batches)
        seconds.append(time.perf_counter() - started)
        adv_seconds.append(sum(r.adv_seconds for r in reports))
        bar.update()
        if update % cfg.train.log_every == 0 or update == total:
            lr = engine.optimizer.param_groups[0]["lr"]
            means = mean_reports(reports)
            log.log(update, {**means, "lr": lr, "seconds": seconds[-1], "epoch": update / per_epoch}, console=False)
            bar.set_postfix(loss=f"{means['loss']:.4f}")

        if update % eval_every == 0 or update == total:
            metrics = evaluate(engine.module, forward, dev_batches, task, label=f"{method_name} seed {seed} dev")
            history.append({"update": update, "epoch": update / per_epoch, **metrics})
            log.log(update, {"epoch": round(update / per_epoch, 3), **{f"dev_{k}": v for k, v in metrics.items()}})
            if best is None or metrics[task.metric] > best[task.metric]:
                best, best_update = metrics, update
                with full_weights(engine):
                    best_state = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
    bar.close()

    # The best checkpoint, judged once more: clean, and under the embedding attack.
    with full_weights(engine, modify=True):
        engine.module.load_state_dict(best_state)
    final = evaluate(engine.module, forward, dev_batches, task, cfg.attack, f"{method_name} seed {seed} best")
    for name, data in prep.extra_dev.items():  # the other dev sets at the checkpoint the dev set chose
        batches = DataLoader(data, batch_size=cfg.train.eval_batch_size, collate_fn=collate)
        extra = evaluate(engine.module, forward, batches, task, cfg.attack, f"{method_name} seed {seed} {name}")
        final.update({f"{name}_{k}": v for k, v in extra.items()})
    log.log(total, {"best_update": best_update, **{f"best_{k}": v for k, v in final.items()}})
    log.close()
    warm = seconds[3:] if len(seconds) > 6 else seconds  # the first updates pay for warm-up
    result = SeedResult(
        method=method_name, seed=seed, best=final, best_update=best_update, best_epoch=best_update / per_epoch,
        updates=total, seconds_per_update=statistics.median(warm),
        adv_seconds_per_update=statistics.median(adv_seconds[len(adv_seconds) - len(warm):]),
        adv_skipped=run.method.skipped_total, initialised=run.initialised, history=history,
    )
    if on_best is not None:
        with full_weights(engine):
            on_best(result, engine.module)
    engine.destroy()  # the next seed builds its own engine in this process
    return result


def batches_forever(dataset: Encoded, batch_size: int, seed: int, collate: Collator) -> Iterator[dict]:
    """Shuffled micro-batches, epoch after epoch; each rank draws its own share of every epoch."""
    sampler = DistributedSampler(dataset, num_replicas=distributed.world_size(), rank=distributed.rank(),
                                 shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        yield from loader


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


