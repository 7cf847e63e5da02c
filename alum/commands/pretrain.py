"""`alum pretrain`: masked-LM pretraining, then ALUM (or any core method) for the final steps."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="masked-LM pretraining that switches to adversarial training for the final steps",
        description="Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=3e-4.",
    )
    p.add_argument("--config", help="a YAML config (configs/pretrain/*.yaml)")
    p.add_argument("--tokenizer", help="tokenizer directory (data.tokenizer)")
    p.add_argument("--files", nargs="+", help="corpus files, globs or directories (data.files)")
    p.add_argument("--output", help="output directory (output)")
    p.add_argument("--max-steps", type=int, help="steps of the whole schedule (max_steps)")
    p.add_argument("--deepspeed", help="a DeepSpeed JSON config (engine.deepspeed)")
    p.add_argument("--method", help="the adversarial method of the final phase (adversarial.method)")
    p.add_argument("--stop-after", type=int, help="stop after N steps with a checkpoint (stop_after)")
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.set_defaults(run=run)


FLAG_KEYS = {
    "tokenizer": "data.tokenizer", "files": "data.files", "output": "output", "max_steps": "max_steps",
    "deepspeed": "engine.deepspeed", "method": "adversarial.method", "stop_after": "stop_after",
}


def run(args) -> int:
    from alum.config import load_config
    from pretrain.config import PretrainConfig
    from pretrain.train import run as train

    overrides = list(args.overrides)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={_yaml(value)}")
    cfg = load_config(PretrainConfig, args.config, overrides)
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0


def _yaml(value) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)
