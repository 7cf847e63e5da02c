"""`alum finetune`: fine-tune an encoder on a task with SMART (or any core method), over several seeds."""

from __future__ import annotations

import json

# Short flags and the config key each one sets. They are applied after the `key=value` overrides.
FLAGS = {
    "model": ("--model", str, "DIR", "a local HF model directory (the pretrain stage's export, or any encoder)"),
    "data.train_file": ("--train-file", str, "PATH", "training file (tsv, csv or jsonl)"),
    "data.dev_file": ("--dev-file", str, "PATH", "dev file, in the same format"),
    "output": ("--output", str, "DIR", "output directory"),
    "adversarial.method": ("--method", str, "NAME[,NAME]", "a core method, or several to compare"),
    "train.seeds": ("--seeds", int, "N", "how many seeds to run"),
    "train.max_steps": ("--max-steps", int, "N", "optimizer updates per run (replaces epochs)"),
    "attack.eps": ("--attack-eps", float, "EPS", "radius of the embedding attack in the final evaluation"),
    "attack.steps": ("--attack-steps", int, "K", "steps of the embedding attack"),
    "engine.deepspeed": ("--deepspeed", str, "JSON", "a DeepSpeed config: ZeRO stage, offload (configs/deepspeed/)"),
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune on a task with SMART or another adversarial method",
        description="Fine-tune a local HF encoder on a task (GLUE preset or generic tsv/csv/jsonl), over several "
        "seeds; writes metrics.json (mean, std, every seed) and the best checkpoint as a HF directory in best/. "
        "Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=5e-5.",
    )
    p.add_argument("--config", help="YAML config, e.g. configs/finetune/sst2.yaml")
    for key, (flag, kind, metavar, text) in FLAGS.items():
        p.add_argument(flag, dest=key, type=kind, metavar=metavar, help=f"{text} (sets {key})")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.set_defaults(run=run)


def flag_overrides(args, flags: dict) -> list[str]:
    # JSON is YAML: a path keeps its characters (':', '#') and a number its type.
    return [f"{key}={json.dumps(getattr(args, key))}" for key in flags if getattr(args, key) is not None]


def run(args) -> int:
    from alum.training.distributed import ensure_launch_env
    from finetune.config import load_finetune_config
    from finetune.run import finetune

    cfg = load_finetune_config(args.config, [*args.overrides, *flag_overrides(args, FLAGS)])
    ensure_launch_env()
    finetune(cfg)
    return 0
