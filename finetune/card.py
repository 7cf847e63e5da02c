"""What a fine-tuned model's card says (alum/io/model_card.py lays it out): the base model, the task, the
method and its options, the dev metrics clean and under attack, the data, and how it was trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alum.config import to_dict
from alum.io.model_card import ModelCard, bullets, code, figure, size, weights_summary, yaml_block
from alum.finetune.config import AttackConfig
from alum.finetune.prepare import Prepared
from alum.finetune.task_types import task_type
from alum.finetune.train import SeedResult


def finetune_card(prep: Prepared, method: str, directory: Path, result: SeedResult,
                  summary: dict[str, Any] | None = None) -> ModelCard:
    """The card of the model saved in `directory`: the checkpoint of `result` (its seed's best evaluation);
    with `summary` (the method's metrics.json), the spread over seeds too."""
    cfg, task = prep.cfg, prep.task
    family, parameters = weights_summary(directory)
    kind = task_type(task)
    labels = "regression (one score)" if task.regression else ", ".join(
        f"{i} {name}" for i, name in task.id2label().items()) if kind.needs_labels else kind.describe_labels(task)
    options = to_dict(cfg)["adversarial"]["options"].get(method) or {}
    train = cfg.train
    length = f"{train.max_steps} updates" if train.max_steps else f"{train.epochs} epochs"
    sections = [
        ("Base model", bullets({"path": code(str(prep.model_dir)), "family": family, "size": size(parameters)})),
        ("Task", bullets({"name": task.name, "labels": labels, "metric (picks the checkpoint)": task.metric,
                          "text columns": ", ".join(task.text_columns or []), "label column": task.label_column})),
        ("Method", [f"`{method}`, with these options (`adversarial.options.{method}`):", "", *yaml_block(options)]),
        ("Training", bullets({
            "length": length, "learning rate": cfg.optim.lr, "micro-batch": cfg.engine.micro_batch_size,
            "gradient accumulation": cfg.engine.grad_accum, "max sequence length": cfg.data.max_seq_len,
            "seeds": ", ".join(str(s) for s in cfg.seeds()),
            "early stopping": f"patience {train.patience}, min_delta {train.min_delta}" if train.patience else "off",
            "gradient checkpointing": "on" if train.gradient_checkpointing else "off"})),
        ("Dev metrics", dev_metrics(result, summary, task.metric, cfg.attack)),
        ("Data", bullets({**sources(cfg.data), "training examples": len(prep.train), "dev examples": len(prep.dev)})),
    ]
    return ModelCard(title=f"{task.name}: fine-tuned with {method}", pipeline_tag=kind.pipeline_tag,
                     tags=["alum", method, task.name], sections=sections)


def sources(data) -> dict[str, str]:
    """Where the rows came from: the dataset and its splits, or the files."""
    if data.dataset:
        name = data.dataset + (f" ({data.dataset_config})" if data.dataset_config else "")
        return {"dataset": code(name), "splits": f"{data.train_split}, {data.dev_split}"}
    return {"training file": code(data.train_file), "dev file": code(data.dev_file)}


def dev_metrics(result: SeedResult, summary: dict[str, Any] | None, metric: str, attack: AttackConfig) -> list[str]:
    """The checkpoint's dev metrics, clean and (`attack_*`) under the embedding attack; with several seeds
    the mean ± standard deviation of each over them."""
    where = f"update {result.best_update} (epoch {result.best_epoch:.2f})"
    if result.stopped_at is not None:
        where += f"; early stopping ended the seed at update {result.stopped_at}"
    lines = [f"Seed {result.seed}, its best evaluation by {metric}: {where}.", ""]
    several = summary is not None and len(summary["seeds"]) > 1
    lines += ["| metric | this checkpoint |" + (f" mean ± sd over {len(summary['seeds'])} seeds |" if several else ""),
              "|---|---|" + ("---|" if several else "")]
    for key, value in result.best.items():
        row = f"| {key} | {figure(value)} |"
        if several:
            spread = summary["figures"][key]
            row += f" {figure(spread['mean'])} ± {figure(spread['std'])} |"
        lines.append(row)
    if attack.enabled:
        lines += ["", f"`attack_*`: under PGD in embedding space, eps {attack.eps} ({attack.norm}, per {attack.level}), "
                      f"{attack.steps} step{'s' if attack.steps > 1 else ''} of {figure(attack.alpha)}, in eval mode from delta 0."]
    return lines
