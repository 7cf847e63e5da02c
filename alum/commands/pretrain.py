"""`alum pretrain`: masked-LM pretraining, then ALUM (or any core method) for the final steps."""

from __future__ import annotations

import argparse

from alum.commands.flags import Flag, add_flags, flag_values

FLAGS = [
    Flag("--tokenizer", "data.tokenizer", "tokenizer directory", metavar="DIR"),
    Flag("--files", "data.files", "corpus files, globs or directories", metavar="PATH", nargs="+"),
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
        description="Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=3e-4.",
    )
    p.add_argument("--config", help="a YAML config, or a shipped preset's name (tiny, bert-base, ...)")
    add_flags(p, FLAGS)
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.set_defaults(run=run)


def run(args) -> int:
    from alum.config import load_config
    from alum.pretrain.config import PretrainConfig
    from alum.pretrain.train import run as train

    cfg = load_config(PretrainConfig, args.config, args.overrides, flag_values(args, FLAGS), kind="pretrain")
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
