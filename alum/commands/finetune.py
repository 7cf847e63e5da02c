"""`alum finetune`: fine-tune an encoder on a task with SMART (or any core method), over several seeds: the flags
as a FinetuneConfig, then the finetune stage's `run` (finetune/run.py)."""

from __future__ import annotations

from alum.commands.flags import Flag, add_flags, flag_values
from alum.finetune.config import load_finetune_config

FLAGS = [
    Flag("--model", "model", "a local HF model directory (the pretrain stage's export, or any encoder)", metavar="DIR"),
    Flag("--tokenizer", "tokenizer", "tokenizer directory (default: the model's own)", metavar="DIR"),
    Flag("--train-file", "data.train_file", "training file (tsv, csv, jsonl, parquet, arrow) or save_to_disk folder",
         metavar="PATH"),
    Flag("--dev-file", "data.dev_file", "dev file, in any of those formats", metavar="PATH"),
    Flag("--dataset", "data.dataset", "a dataset instead of files: a save_to_disk or local dataset folder, or a Hub "
         "name (datasets.load_dataset; splits data.train_split, data.dev_split)", metavar="NAME|DIR"),
    Flag("--dataset-config", "data.dataset_config", "the dataset's configuration (e.g. sst2 of glue)", metavar="NAME"),
    Flag("--max-seq-len", "data.max_seq_len", "tokens per example (longer ones are cut)", type=int, metavar="N"),
    Flag("--output", "output", "output directory", metavar="DIR"),
    Flag("--method", "adversarial.method", "a core method, or several to compare", metavar="NAME[,NAME]"),
    Flag("--seeds", "train.seeds", "how many seeds to run", type=int, metavar="N"),
    Flag("--max-steps", "train.max_steps", "optimizer updates per run (replaces epochs)", type=int, metavar="N"),
    Flag("--attack-eps", "attack.eps", "radius of the embedding attack in the final evaluation", type=float,
         metavar="EPS"),
    Flag("--attack-steps", "attack.steps", "steps of the embedding attack", type=int, metavar="K"),
    Flag("--attack-step-size", "attack.step_size", "step size of the attack (default: 2.5 * eps / steps)",
         type=float, metavar="S"),
    Flag("--attack-norm", "attack.norm", "l2 or linf", metavar="NORM"),
    Flag("--attack-level", "attack.level", "token or example", metavar="LEVEL"),
    Flag("--no-attack", "attack.enabled", "clean evaluation only", const=False),
    Flag("--deepspeed", "engine.deepspeed", "a DeepSpeed JSON config, or a shipped one's name (zero2, bf16, ...)",
         metavar="JSON"),
]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune on a task with SMART or another adversarial method",
        description="Fine-tune a local HF encoder on a task (GLUE preset or generic tsv/csv/jsonl), over several "
        "seeds; writes metrics.json (mean, std, every seed) and the best checkpoint as a HF directory in best/. "
        "Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=5e-5.",
    )
    p.add_argument("--config", help="a YAML config, or a shipped preset's name (sst2, rte, generic, ...)")
    add_flags(p, FLAGS)
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds an earlier run in the output directory finished (their result.json) and "
                        "train the others, each from its first update: there is no resume inside a seed")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.set_defaults(run=run)


def run(args) -> int:
    from alum.training.distributed import ensure_launch_env  # torch: imported once the command line is read
    from alum.finetune.run import run as finetune

    cfg = load_finetune_config(args.config, args.overrides, flag_values(args, FLAGS))
    ensure_launch_env()
    finetune(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
