"""`alum evaluate`: a fine-tuned model's metrics on any file in its task's format, clean and under an
embedding-space PGD attack; several models at once to compare their robustness. The last line of stdout
is one JSON object; `--output FILE` writes it to a file too."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics of fine-tuned models on a task file, clean and under an embedding attack",
        description="Evaluate one or more fine-tuned models (HF directories, e.g. the best/ of `alum finetune`) on "
        "a file in the task's format. Prints the metrics; the last line of stdout is one JSON object.",
    )
    p.add_argument("--model", nargs="+", required=True, metavar="DIR", help="model directories (several to compare)")
    p.add_argument("--file", required=True, metavar="PATH", help="a task file (tsv, csv, jsonl, parquet, arrow) or a "
                   "save_to_disk folder (a DatasetDict's validation split)")
    p.add_argument("--task", metavar="NAME|YAML", help="a GLUE preset name or a config whose `task` section describes "
                   "the task; default: the task saved with the model (alum_task.json)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: each model's own)")
    p.add_argument("--max-seq-len", type=int, metavar="N", help="default: 128, or the model's positions if fewer")
    p.add_argument("--batch-size", type=int, default=64, metavar="N")
    p.add_argument("--attack-eps", type=float, metavar="EPS",
                   help="radius of the embedding attack, per token L2 by default (0.01; 0 or --no-attack: none)")
    p.add_argument("--attack-steps", type=int, metavar="K", help="PGD steps (5)")
    p.add_argument("--attack-step-size", type=float, metavar="S", help="PGD step size (2.5 * eps / steps)")
    p.add_argument("--attack-norm", choices=["l2", "linf"])
    p.add_argument("--attack-level", choices=["token", "example"])
    p.add_argument("--no-attack", action="store_true", help="clean metrics only")
    p.add_argument("--output", metavar="FILE", help="also write the JSON object to this file")
    p.set_defaults(run=run)


def resolve_task(spec: str | None, model_dir: Path):
    from alum.config import read_yaml
    from alum.errors import UserError
    from alum.finetune.model import TASK_FILE
    from alum.finetune.tasks import task_from

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
        return task_from(spec, source=str(saved))
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return task_from(read_yaml(spec).get("task") or {}, source=spec)
    return task_from(spec, source="--task")


def attack_config(args):
    from alum.config import from_dict
    from alum.finetune.evaluate import AttackConfig

    given = {"eps": args.attack_eps, "steps": args.attack_steps, "step_size": args.attack_step_size,
             "norm": args.attack_norm, "level": args.attack_level}
    options = {k: v for k, v in given.items() if v is not None}
    options["enabled"] = not args.no_attack and options.get("eps", 1.0) > 0
    return from_dict(AttackConfig, options, source="the command line", prefix="--attack-")


def run(args) -> int:
    from torch.utils.data import DataLoader

    from alum.errors import UserError
    from alum.finetune.data import Collator, load_task_file
    from alum.finetune.evaluate import evaluate
    from alum.finetune.model import load_classifier, make_forward
    from alum.finetune.prepare import load_model_and_tokenizer

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_seq_len is not None and args.max_seq_len < 8:
        raise UserError(f"--max-seq-len must be at least 8, got {args.max_seq_len}")
    attack = attack_config(args)
    if args.output is not None:
        check_output_file(Path(args.output))
    # Every model and its data checked before the first is evaluated: a model without a trained head too
    # (loaded to see, and let go, so that comparing several models never holds them all at once).
    checked = []
    for name in args.model:
        model_dir, tokenizer, max_len = load_model_and_tokenizer(name, args.tokenizer, args.max_seq_len, "--max-seq-len")
        task = resolve_task(args.task, model_dir)
        if not task.regression and not task.labels:
            raise UserError(f"task.labels: the task '{task.name}' lists no labels; name them to evaluate")
        data = load_task_file(args.file, task, tokenizer, max_len, "evaluation")
        _, initialised = load_classifier(model_dir, task)
        if initialised:
            raise UserError(f"{model_dir}: no trained classification head for task '{task.name}' "
                            f"({task.num_labels} outputs); these weights would be random: {', '.join(initialised)}")
        checked.append((name, model_dir, tokenizer, task, data))

    results = {}
    for name, model_dir, tokenizer, task, data in checked:
        model, _ = load_classifier(model_dir, task)
        batches = DataLoader(data, batch_size=args.batch_size, collate_fn=Collator(tokenizer, task.regression))
        metrics = evaluate(model, make_forward(model, task.regression), batches, task, attack, label=name)
        results[name] = {"task": task.name, "metric": task.metric, "examples": len(data), **metrics}
        print(f"{name}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    summary = {"file": args.file, "attack": {**vars(attack), "step_size": attack.alpha} if attack.enabled else None}
    if len(results) == 1:
        summary.update({"model": args.model[0], **results[args.model[0]]})
    else:
        summary["models"] = results
    print(json.dumps(summary))
    if args.output is not None:
        write_output(Path(args.output), summary)
    return 0


def check_output_file(path: Path) -> None:
    """Refuse, before any model is evaluated, an --output that cannot be written."""
    from alum.errors import UserError
    from alum.io.publish import check_directory

    if path.is_dir():
        raise UserError(f"--output {path}: a directory, not a file")
    check_directory(path.parent, "--output", given=path)


def write_output(path: Path, summary: dict) -> None:
    """The JSON object, written aside and renamed: a file there before is replaced whole or left as it was."""
    import os

    from alum.errors import writing

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with writing("the evaluation", path):
        partial.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(partial, path)
