"""The `alum` console script. Each stage adds its own subcommand; bad input ends in one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from alum.commands.flags import OVERRIDE
from alum.errors import UserError, disk_full
from alum.io.model_card import alum_version, record_command

# Subcommand modules, each with `add_parser(subparsers)` and a thin `run(args)` over a stage's `run`; the imports
# of torch (a stage's training or evaluation module) stay inside those functions so that `alum --help` answers
# at once.
COMMANDS = ["alum.commands.methods", "alum.commands.tokenizer", "alum.commands.pretrain", "alum.commands.prepare",
            "alum.commands.export", "alum.commands.finetune", "alum.commands.evaluate", "alum.commands.quickstart"]


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line ends like any bad input: one line on stderr, exit 2 (argparse's own
    `error` prints the whole usage first). Subcommand parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="alum", description="Adversarial pretraining (ALUM) and fine-tuning (SMART) for HF encoders."
    )
    parser.add_argument("--version", action="version", version=f"alum {alum_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may come anywhere, also after flags (argparse alone only takes them in one run)
        if extra and hasattr(args, "overrides") and all(OVERRIDE.match(e) for e in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            prog = f"alum {args.command}"
            if getattr(args, "action", None):
                prog += f" {args.action}"
            print(f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see {prog} --help)", file=sys.stderr)
            return 2
    except SystemExit as done:  # --help (0) or a bad command line (2, its one line already printed)
        return done.code if isinstance(done.code, int) else 2
    # what the exported models' cards give as the command that made them
    record_command(["alum", *(sys.argv[1:] if argv is None else argv)])
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
    except Exception as err:  # noqa: BLE001 - only a full disk is turned into a line; the rest re-raises
        full = disk_full(err)
        if full is None:
            raise
        print(f"alum {args.command}: error: cannot write: {full}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
