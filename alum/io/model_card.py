"""The model card (`README.md`) written into every exported model directory: a YAML front matter the
Hugging Face Hub reads (library, pipeline, tags), then what a reader needs to know where the weights came
from: the base model, the task or corpus, the method and its options, the figures, the data, the command that
made it, the alum version and the date. Each stage says what goes in (`finetune/card.py`, `pretrain/card.py`);
this module lays it out and writes it.

No `base_model` key: the Hub wants a repository id there, and alum reads local directories only, whose Hub
origin cannot be known. (A config.json's `_name_or_path` is no guide: all-MiniLM-L6-v2's names
nreimers/MiniLM-L6-H384-uncased, the model it was itself trained from.) The body gives the local path."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CARD = "README.md"

# The command line as the CLI received it (`alum.cli.main` records it); None outside the CLI.
_command: list[str] | None = None


@dataclass
class ModelCard:
    title: str
    pipeline_tag: str  # text-classification, fill-mask
    tags: list[str]
    sections: list[tuple[str, list[str]]] = field(default_factory=list)  # (heading, markdown lines)

    def render(self) -> str:
        front = {"library_name": "transformers", "pipeline_tag": self.pipeline_tag, "tags": list(dict.fromkeys(self.tags))}
        lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {self.title}", ""]
        for heading, body in self.sections:
            lines += [f"## {heading}", "", *body, ""]
        lines += ["## Provenance", "", *bullets({"command": code(command_line()), "alum": alum_version(),
                                                   "date": datetime.datetime.now(datetime.timezone.utc)
                                                   .strftime("%Y-%m-%d %H:%M UTC")}), ""]
        return "\n".join(lines)


def write_card(directory: Path, card: ModelCard) -> Path:
    """`directory/README.md`, replaced whole (a reader sees the old card or the new one)."""
    path = Path(directory) / CARD
    partial = path.with_name(CARD + ".partial")
    partial.write_text(card.render(), encoding="utf-8")
    os.replace(partial, path)
    return path


def record_command(argv: list[str]) -> None:
    global _command
    _command = list(argv)


def command_line() -> str:
    """The command as a shell would take it back: `alum` and its arguments, each quoted where needed."""
    argv = _command if _command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    return shlex.join(str(a) for a in argv)


def alum_version() -> str:
    """The installed distribution's version (a checkout run without installing has none)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alum")
    except PackageNotFoundError:
        return "(not installed)"


def weights_summary(directory: Path) -> tuple[str, int]:
    """The model family (config.json's model_type) and its parameter count, read from the safetensors headers
    of a saved directory (a tied weight is stored, and counted, once)."""
    from safetensors import safe_open

    directory = Path(directory)
    family = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("model_type", "unknown")
    count = 0
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= d
                count += n
    return family, count


def size(parameters: int) -> str:
    return f"{parameters / 1e6:.2f}M parameters ({parameters:,})"


def code(text: str) -> str:
    """Inline code that survives a backtick in the text."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def bullets(items: dict[str, Any]) -> list[str]:
    return [f"- {key}: {value}" for key, value in items.items()]


def yaml_block(data: Any) -> list[str]:
    return ["```yaml", yaml.safe_dump(data, sort_keys=False).rstrip(), "```"]


def figure(value: Any) -> str:
    """A metric with six significant digits (metrics.json holds the full value)."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
