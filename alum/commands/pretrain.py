"""`alum pretrain`: masked-LM pretraining, then ALUM (or any core method) for the final steps: the flags as a
PretrainConfig, then the pretrain stage's `run` (pretrain/train.py). `alum prepare` is commands/prepare.py."""

from __future__ import annotations

import argparse

from alum.commands.flags import Flag, add_flags, flag_values
from alum.pretrain.config import load_pretrain_config

FLAGS = [
    Flag("--tokenizer", "data.tokenizer", "tokenizer directory", metavar="DIR"),
    Flag("--files", "data.files", "corpus files, globs or directories", metavar="PATH", nargs="+"),
    Flag("--data-dir", "data.prepared", "a corpus made by `alum prepare`: train from it without reading the text",
         metavar="DIR"),
    Flag("--block-size", "data.block_size", "tokens per training block (with --data-dir: the prepared corpus's)",
         type=int, metavar="N"),
    Flag("--split", "data.split", "the split of a save_to_disk folder holding a DatasetDict (default: train)",
         metavar="NAME"),
    Flag("--text-column", "data.text_column", "column of JSON lines / CSV / parquet / arrow files and save_to_disk folders", metavar="NAME"),
    Flag("--strict", "data.strict", "stop at the first undecodable line (default: skip and count)", const=True),
    Flag("--output", "output", "output directory", metavar="DIR"),
    Flag("--max-steps", "max_steps", "steps of the whole schedule", type=int, metavar="N"),
    Flag("--deepspeed", "engine.deepspeed", "a DeepSpeed JSON config, or a shipped one's name (zero2, bf16, ...)",
         metavar="JSON"),
    Flag("--method", "adversarial.method", "the adversarial method of the final phase", metavar="NAME"),
    Flag("--stop-after", "stop_after", "stop after N steps with a checkpoint", type=int, metavar="N"),
]

def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="masked-LM pretraining that switches to adversarial training for the final steps",
        description="Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=3e-4. "
                    "The corpus is --files (prepared into a cache on the first run) or --data-dir "
                    "(prepared once by `alum prepare`).",
    )
    p.add_argument("--config", help="a YAML config, or a shipped preset's name (tiny, bert-base, ...)")
    add_flags(p, FLAGS)
    p.add_argument("--resume", action="store_true", help="continue, exactly, from the latest complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.set_defaults(run=run)


def run(args) -> int:
    from alum.pretrain.train import run as train  # torch: imported once the command line is read

    cfg = load_pretrain_config(args.config, args.overrides, flag_values(args, FLAGS))
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    # Ctrl-C stops with a checkpoint, yet the command was interrupted: a script running it must not go on
    return 130 if result.get("signal") == "SIGINT" else 0
