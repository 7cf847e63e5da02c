"""Small task files written on the fly, and subsets of the embedded SST-2 sample."""

from __future__ import annotations

import json
from pathlib import Path

from alum.config import from_dict
from alum.finetune.tasks import TaskConfig
from support.paths import SST2, WNUT17


def sst2_lines(n: int = 4000) -> list[str]:
    rows = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1 : n + 1]
    return [r.split("\t")[0] for r in rows]


def write_tsv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    lines = (["\t".join(header)] if header else []) + ["\t".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sst2_subset(tmp_path: Path, train: int = 64, dev: int = 32) -> tuple[Path, Path]:
    """The first rows of the embedded SST-2 sample, as small train and dev files."""
    def head(name: str, n: int) -> Path:
        lines = (SST2 / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[: n + 1]
        out = tmp_path / f"{name}.tsv"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out

    return head("train", train), head("dev", dev)


def generic(**fields) -> TaskConfig:
    """A generic (non-GLUE) task spec named 'mine' with these fields, checked as a config's `task:` section."""
    return from_dict(TaskConfig, {"name": "mine", **fields}, prefix="task.")


def tagger_task(**fields) -> TaskConfig:
    """A token-classification task spec named 'ner' with these fields, checked as a config's `task:` section."""
    return from_dict(TaskConfig, {"name": "ner", "type": "token_classification", **fields}, prefix="task.")


def wnut17_subset(tmp_path: Path, train: int = 48, dev: int = 16) -> tuple[Path, Path]:
    """The first sentences of the embedded WNUT-17 sample, as small CoNLL train and dev files."""
    def head(name: str, n: int) -> Path:
        text = (WNUT17 / f"{name}.conll").read_text(encoding="utf-8")
        out = tmp_path / f"{name}.conll"
        out.write_text("\n\n".join(text.split("\n\n")[:n]) + "\n", encoding="utf-8")
        return out

    return head("train", train), head("dev", dev)
