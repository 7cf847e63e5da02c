"""Dev metrics of a model on a task file, clean and under an embedding-space PGD attack.

The attack is the core's: delta enters at the output of the input embeddings (the same hook training uses),
climbs the task loss in the core's ascent loop (`alum.adversarial.ascent.climb`, PGD's) with normalised steps,
and is projected back to the eps-ball after each one (`functional.ascent_step` in `project` mode), with the
model in eval mode (no dropout). It starts from zero, so it is deterministic: two models attacked with the
same settings are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from alum.adversarial import Target, ascent
from alum.adversarial import functional as AF
from alum.training.metrics import progress_bar
from alum.finetune.config import AttackConfig
from alum.adversarial.target import ForwardFn
from alum.finetune.task_types import task_type
from alum.finetune.tasks import TaskConfig


def attack_delta(target: Target, batch: dict[str, Tensor], attack: AttackConfig) -> Tensor:
    """K projected ascent steps on the task loss, from delta = 0; zero at padding."""
    ids = batch["input_ids"]
    delta = torch.zeros(target.perturbation.shape(ids), device=ids.device)
    mask = AF.token_mask(batch.get("attention_mask"), delta.shape, ids.device)
    if attack.eps == 0:
        return delta

    def loss_at(d: Tensor) -> Tensor:
        with target.perturbation.applied(d):
            return target(batch).loss

    rule = ascent.Rule(attack.alpha, "project", attack.norm, attack.level, attack.eps, sign=True)
    # a non-finite gradient stops the climb at the last finite point: an attack that stalls, not a crash
    return ascent.climb(delta, loss_at, rule, mask, attack.steps).delta


def predictions(model: nn.Module, forward: ForwardFn, batches: list[dict[str, Tensor]],
                attack: AttackConfig | None = None, label: str = "evaluate",
                gold_of: Callable[[dict[str, Tensor]], np.ndarray] = lambda b: b["labels"].cpu().numpy()
                ) -> tuple[np.ndarray, np.ndarray]:
    """The model's outputs (logits, or scores for regression) and the gold values (`gold_of` a batch: row for
    row with the outputs), over every batch, with a progress bar in examples (the attack's K ascent steps per
    batch take minutes on a CPU)."""
    target = Target(model, forward)
    device = next(model.parameters()).device
    outputs, gold = [], []
    attacking = attack is not None and attack.enabled
    what = f"{label}: under attack ({attack.steps} steps)" if attacking else f"{label}: clean"
    bar = progress_bar(sum(len(b["labels"]) for b in batches), what, unit="ex", leave=False)
    for batch in batches:
        bar.update(len(batch["labels"]))
        batch = {k: v.to(device) for k, v in batch.items()}
        delta = attack_delta(target, batch, attack) if attack is not None and attack.enabled else None
        with torch.no_grad():
            if delta is None:
                logits = target(batch).logits
            else:
                with target.perturbation.applied(delta):
                    logits = target(batch).logits
        outputs.append(logits.float().cpu().numpy())
        gold.append(gold_of(batch))
    bar.close()
    return np.concatenate(outputs), np.concatenate(gold)


def evaluate(model: nn.Module, forward: ForwardFn, batches: Iterable[dict[str, Tensor]], task: TaskConfig,
             attack: AttackConfig | None = None, label: str = "evaluate") -> dict[str, float]:
    """The task's metrics; with an enabled `attack`, also every metric under attack, prefixed `attack_`.
    `label` names the evaluation on its progress bars."""
    was_training = model.training
    model.eval()
    try:
        batches = list(batches)
        kind = task_type(task)
        metrics = kind.metrics(*predictions(model, forward, batches, label=label, gold_of=kind.gold), task)
        if attack is not None and attack.enabled:
            attacked = kind.metrics(*predictions(model, forward, batches, attack, label, kind.gold), task)
            metrics.update({f"attack_{k}": v for k, v in attacked.items()})
    finally:
        model.train(was_training)
    return metrics
