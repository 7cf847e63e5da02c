"""`alum evaluate`: the flags as an EvaluateConfig, the finetune stage's evaluation (finetune/evaluate.py `run`),
one line per model as it is done, and the summary as the last line of stdout: one JSON object."""

from __future__ import annotations

import json

from alum.config import from_dict
from alum.finetune.config import AttackConfig, EvaluateConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics of fine-tuned models on a task file, clean and under an embedding attack",
        description="Evaluate one or more fine-tuned models (HF directories, e.g. the best/ of `alum finetune`) on "
        "a file in the task's format, or on a dataset's split. Prints the metrics; the last line of stdout is one "
        "JSON object.",
    )
    p.add_argument("--model", nargs="+", required=True, metavar="DIR", help="model directories (several to compare)")
    examples = p.add_mutually_exclusive_group(required=True)
    examples.add_argument("--file", metavar="PATH", help="a task file (tsv, csv, jsonl, parquet, arrow; CoNLL or "
                          "jsonl for token classification; SQuAD JSON for question answering) or a save_to_disk "
                          "folder (a DatasetDict's validation split)")
    examples.add_argument("--dataset", metavar="NAME|DIR", help="a dataset loaded with datasets.load_dataset (a local "
                          "dataset folder, or a Hub name on a machine with network) or a save_to_disk folder")
    p.add_argument("--dataset-config", default="", metavar="NAME", help="the dataset's configuration (glue: sst2, ...)")
    p.add_argument("--split", default="validation", metavar="NAME", help="the dataset's split (default validation)")
    p.add_argument("--task", metavar="NAME|YAML", help="a preset's name (sst2, mnli, wnut17, squad_v1, ...) or a "
                   "config whose `task` section describes the task; default: the task saved with the model "
                   "(alum_task.json)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: each model's own)")
    p.add_argument("--max-seq-len", type=int, metavar="N", help="default: the length the model was fine-tuned at "
                   "(saved with it by `alum finetune`); else 128, or the model's positions if fewer")
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


def attack_config(args) -> AttackConfig:
    given = {"eps": args.attack_eps, "steps": args.attack_steps, "step_size": args.attack_step_size,
             "norm": args.attack_norm, "level": args.attack_level}
    options = {k: v for k, v in given.items() if v is not None}
    options["enabled"] = not args.no_attack and options.get("eps", 1.0) > 0
    return from_dict(AttackConfig, options, source="the command line", prefix="--attack-")


def run(args) -> int:
    from alum.finetune.evaluate import run as evaluate  # torch: imported once the command line is read

    cfg = EvaluateConfig(models=args.model, file=args.file or "", dataset=args.dataset or "",
                         dataset_config=args.dataset_config, split=args.split, task=args.task, tokenizer=args.tokenizer,
                         max_seq_len=args.max_seq_len, batch_size=args.batch_size, attack=attack_config(args),
                         output=args.output)

    def say(name: str, metrics: dict) -> None:
        print(f"{name}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)

    print(json.dumps(evaluate(cfg, on_model=say)))
    return 0
