"""One way from the command line to a config, for every command.

A command declares its flags as `Flag`s, each naming the config key it sets. The config file (a path or a
shipped preset's name) is read first, then the `key.sub=value` overrides (values parsed as YAML), then the
flags, whose values go in as argparse typed them: a path holding `#`, `:`, spaces or brackets arrives intact.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# `key.sub=value`: what an override looks like, wherever it stands on the command line.
OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)*=")


@dataclass(frozen=True)
class Flag:
    name: str  # --output
    key: str  # the config key it sets: output.dir
    help: str
    type: Callable[[str], Any] | None = str
    metavar: str | None = None
    nargs: str | None = None
    const: Any = None  # a switch: the flag sets the key to this value

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        text = f"{self.help} (sets {self.key})"
        if self.const is not None:
            parser.add_argument(self.name, dest=self.key, action="store_const", const=self.const, help=text)
        else:
            parser.add_argument(self.name, dest=self.key, type=self.type, metavar=self.metavar, nargs=self.nargs,
                                help=text)


def add_flags(parser: argparse.ArgumentParser, flags: list[Flag]) -> None:
    for flag in flags:
        flag.add_to(parser)


def flag_values(args: argparse.Namespace, flags: list[Flag]) -> dict[str, Any]:
    """The config keys the user set with a flag, and their values."""
    return {f.key: getattr(args, f.key) for f in flags if getattr(args, f.key) is not None}
