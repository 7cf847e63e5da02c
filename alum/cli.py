"""The `alum` console script. Each stage adds its own subcommand; bad input ends in one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from alum.commands.flags import OVERRIDE
from alum.errors import UserError

# Subcommand modules, each with `add_parser(subparsers)`; heavy imports stay inside their run functions
# so that `alum --help` answers at once.
COMMANDS = ["alum.commands.methods", "alum.commands.tokenizer", "alum.commands.pretrain", "alum.commands.finetune",
            "alum.commands.evaluate", "alum.commands.quickstart"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alum", description="Adversarial pretraining (ALUM) and fine-tuning (SMART) for HF encoders."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come anywhere, also after flags (argparse alone only takes them in one run)
    if extra and hasattr(args, "overrides") and all(OVERRIDE.match(e) for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args) or 0
    except UserError as err:
        print(f"alum {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `alum methods | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"alum {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
