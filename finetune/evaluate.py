"""Dev metrics of a model on a task file or a dataset split, clean and under an embedding-space PGD attack.

The attack is the core's: delta enters at the output of the input embeddings (the same hook training uses),
climbs the task loss in the core's ascent loop (`alum.adversarial.ascent.climb`, PGD's) with normalised steps,
and is projected back to the eps-ball after each one (`functional.ascent_step` in `project` mode), with the
model in eval mode (no dropout). It starts from zero, so it is deterministic: two models attacked with the
same settings are comparable.

`run(EvaluateConfig)` is the stage's entry (what `alum evaluate` calls): several models on one task file or
dataset split, every
input checked before the first is evaluated; it returns the summary the command prints as its last line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from alum.adversarial import Target, ascent
from alum.adversarial import functional as AF
from alum.adversarial.target import ForwardFn
from alum import presets
from alum.config import read_yaml
from alum.errors import UserError, writing
from alum.io.publish import check_directory
from alum.training.metrics import progress_bar
from alum.finetune.config import AttackConfig, EvaluateConfig
from alum.finetune.model import SAVED_LENGTH, TASK_FILE
from alum.finetune.prepare import load_model_and_tokenizer
from alum.finetune.sources import from_dataset
from alum.finetune.task_types import task_type
from alum.finetune.tasks import TaskConfig, task_from


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
    bar = progress_bar(sum(len(b["input_ids"]) for b in batches), what, unit="ex", leave=False)
    for batch in batches:
        bar.update(len(batch["input_ids"]))
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


def run(cfg: EvaluateConfig, on_model: Callable[[str, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Every model of `cfg` on `cfg.file`; returns the summary (one model's figures at the top, several under
    `models`), written to `cfg.output` too when it is set. `on_model(name, metrics)` hears of each model as it
    is done (several take minutes each on a CPU)."""
    if cfg.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.max_seq_len is not None and cfg.max_seq_len < 8:
        raise UserError(f"--max-seq-len must be at least 8, got {cfg.max_seq_len}")
    if bool(cfg.file) == bool(cfg.dataset):
        raise UserError("--file or --dataset: name the examples to evaluate on, one of the two")
    if cfg.output is not None:
        check_output_file(Path(cfg.output))
    # a dataset is loaded once, whatever the number of models; a file is read for each (its task may differ)
    source = from_dataset(cfg.dataset, cfg.dataset_config, cfg.split, "--split") if cfg.dataset else cfg.file
    # Every model and its data checked before the first is evaluated: a model without a trained head too
    # (loaded to see, and let go, so that comparing several models never holds them all at once).
    checked = []
    for name in cfg.models:
        length = cfg.max_seq_len or trained_length(Path(name))
        model_dir, tokenizer, max_len = load_model_and_tokenizer(name, cfg.tokenizer, length, "--max-seq-len")
        task = resolve_task(cfg.task, model_dir)
        kind = task_type(task)
        if kind.needs_labels and not task.regression and not task.labels:
            raise UserError(f"task.labels: the task '{task.name}' lists no labels; name them to evaluate")
        data = kind.load_file(source, task, tokenizer, max_len, "evaluation")
        _, initialised = kind.load_model(model_dir, task)
        if initialised:
            outputs = task.num_labels if kind.needs_labels else 2  # a span head: start and end
            raise UserError(f"{model_dir}: no trained classification head for task '{task.name}' "
                            f"({outputs} outputs); these weights would be random: {', '.join(initialised)}")
        checked.append((name, model_dir, tokenizer, task, data, max_len))

    results = {}
    for name, model_dir, tokenizer, task, data, max_len in checked:
        kind = task_type(task)
        model, _ = kind.load_model(model_dir, task)
        batches = DataLoader(data, batch_size=cfg.batch_size, collate_fn=kind.collator(tokenizer, task))
        metrics = evaluate(model, kind.forward(model, task), batches, task, cfg.attack, label=name)
        results[name] = {"task": task.name, "metric": task.metric, "examples": len(data), "max_seq_len": max_len,
                         **metrics}
        if on_model is not None:
            on_model(name, metrics)
    attack = cfg.attack
    examples = {"file": cfg.file} if cfg.file else {"dataset": cfg.dataset, "dataset_config": cfg.dataset_config,
                                                    "split": cfg.split}
    summary = {**examples, "attack": {**vars(attack), "step_size": attack.alpha} if attack.enabled else None}
    if len(results) == 1:
        summary.update({"model": cfg.models[0], **results[cfg.models[0]]})
    else:
        summary["models"] = results
    if cfg.output is not None:
        write_output(Path(cfg.output), summary)
    return summary


def resolve_task(spec: str | None, model_dir: Path) -> TaskConfig:
    """The task named by `spec` (a GLUE or fine-tuning preset's name, or a YAML config), or without one the task
    saved with the model."""
    if spec is None:
        saved = model_dir / TASK_FILE
        if not saved.is_file():
            raise UserError(f"{model_dir}: no {TASK_FILE} (not exported by `alum finetune`); name the task with "
                            "--task (a preset such as sst2, or a config YAML with a task section)")
        try:
            spec = json.loads(saved.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{saved}:{err.lineno}: malformed JSON ({err.msg}); re-export the model") from None
        except UnicodeDecodeError:
            raise UserError(f"{saved}: not UTF-8 text; re-export the model") from None
        if not isinstance(spec, dict):
            raise UserError(f"{saved}: expected a JSON object (the task's fields), got {type(spec).__name__}")
        spec.pop(SAVED_LENGTH, None)
        return task_from(spec, source=str(saved))
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return task_from(read_yaml(spec).get("task") or {}, source=spec)
    if spec in presets.names("finetune"):  # a fine-tuning preset's task (wnut17, squad_v1, ...), as --config reads it
        shipped = presets.preset("finetune", spec, "--task")
        return task_from(read_yaml(shipped).get("task") or {"name": spec}, source=str(shipped))
    return task_from(spec, source="--task")


def trained_length(model_dir: Path) -> int | None:
    """The length fine-tuning cut examples to, as the export saved it (None for older exports and other
    models; a file that cannot be read is reported by `resolve_task`), so that evaluating a model on its dev
    file gives the figures its run reported."""
    try:
        length = json.loads((model_dir / TASK_FILE).read_text(encoding="utf-8")).get(SAVED_LENGTH)
    except (OSError, ValueError, AttributeError):
        return None
    return length if type(length) is int and length >= 8 else None


def check_output_file(path: Path) -> None:
    """Refuse, before any model is evaluated, an --output that cannot be written."""
    if path.is_dir():
        raise UserError(f"--output {path}: a directory, not a file")
    check_directory(path.parent, "--output", given=path)


def write_output(path: Path, summary: dict) -> None:
    """The JSON object, written aside and renamed: a file there before is replaced whole or left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with writing("the evaluation", path):
        partial.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(partial, path)
