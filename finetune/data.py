"""Task files (tsv, csv, jsonl) read through `datasets`, checked, tokenised, and batched.

Every check runs before training and ends in one line naming the file and the line or the key: a missing
column, a label outside the task's set, a regression target that is not a number, an empty split.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alum.errors import UserError
from alum.presets import data_file
from alum.finetune.tasks import TaskConfig


@dataclass
class Split:
    """A task file, read and checked: the text columns, the labels as written, and each row's line."""

    path: Path
    texts: list[list[str]]  # one list per text column
    raw_labels: list[Any]
    lines: list[int]  # the file line of every row, for error messages

    def __len__(self) -> int:
        return len(self.raw_labels)


def task_file(path: str | Path, what: str) -> Path:
    """The file `path` names (or the shipped sample a `data/...` path names), checked to exist and hold bytes."""
    path = data_file(path)
    if not path.is_file():
        raise UserError(f"{what} file '{path}' not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the {what} file is empty")
    return path


def read_split(path: str | Path, task: TaskConfig, what: str) -> Split:
    """Read `path` in the task's format and check that it has rows and the task's columns."""
    path = task_file(path, what)
    fmt = task.file_format(path)
    rows = _load(path, fmt, task)
    if rows is None or len(rows) == 0:
        raise UserError(f"{path}: the {what} split has no examples")
    for key, columns in (("task.text_columns", task.text_columns), ("task.label_column", [task.label_column])):
        for column in columns:
            if column not in rows.column_names:
                raise UserError(f"{path}: no column '{column}' ({key}); the file has: {', '.join(rows.column_names)}")
    # Rows start on line 2 below a header, line 1 without one (jsonl, or column_names given).
    first = 2 if fmt != "jsonl" and not task.column_names else 1
    texts = [["" if t is None else str(t) for t in rows[c]] for c in task.text_columns]
    return Split(path, texts, list(rows[task.label_column]), list(range(first, first + len(rows))))


def _load(path: Path, fmt: str, task: TaskConfig):
    import datasets

    datasets.disable_progress_bars()
    # critical: a file datasets cannot parse is logged at ERROR level before it raises; the raise is ours to
    # report, in one line
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    if fmt == "jsonl":
        kwargs: dict[str, Any] = {}
        builder = "json"
    else:
        quoting = task.quoting if task.quoting != "auto" else ("none" if fmt == "tsv" else "standard")
        kwargs = dict(
            delimiter="\t" if fmt == "tsv" else ",",
            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL,
            encoding="utf-8-sig",  # MRPC's header starts with a byte-order mark
            keep_default_na=False,  # a sentence "null" or "NA" stays text
            na_filter=False,
        )
        if task.column_names:
            kwargs["column_names"] = task.column_names
        builder = "csv"
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as err:  # the parser's own message, cause first: it names the line when it knows it
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "corresponds to no data" in message:  # a header and no rows: datasets builds no split at all
            return None
        raise UserError(_first_bad_line(path, fmt) or f"{path}: cannot read as {fmt}: {message}") from None


def _first_bad_line(path: Path, fmt: str) -> str | None:
    """The line the parser failed on, when it is bad on its own (not UTF-8, or not JSON in a jsonl file): the
    parsers' own messages name a byte position, not a line. Runs only once reading has failed."""
    import json

    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                return (f"{path}: cannot read as {fmt}: line {number} is not UTF-8 text "
                        f"(byte 0x{line[err.start]:02x} at column {err.start + 1})")
            if fmt == "jsonl" and text.strip():
                try:
                    json.loads(text)
                except json.JSONDecodeError as err:
                    return (f"{path}: cannot read as {fmt}: line {number} is not valid JSON "
                            f"({err.msg}, column {err.colno})")
    return None


def _as_label_text(value: Any) -> str:
    """A class label as the task lists it: 1, 1.0 and "1" are the same class."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def infer_labels(task: TaskConfig, train: Split) -> None:
    """A generic classification task without `labels`: the sorted distinct labels of the training file."""
    if task.regression or task.labels:
        return
    values = {_as_label_text(v) for v in train.raw_labels if v is not None and _as_label_text(v) != ""}
    numeric = all(v.lstrip("-").isdigit() for v in values)
    task.labels = sorted(values, key=int) if numeric else sorted(values)
    if len(task.labels) < 2:
        raise UserError(f"{train.path}: a classification task needs at least two labels, found {task.labels}")


def label_ids(task: TaskConfig, split: Split) -> list[int] | list[float]:
    """The labels as class ids (or floats for regression), checking every row against the task."""
    if task.regression:
        out = []
        for value, line in zip(split.raw_labels, split.lines):
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                raise UserError(f"{split.path}:{line}: label {value!r} in column '{task.label_column}' is not a number "
                                "(task.regression is true)") from None
        return out
    index = {label: i for i, label in enumerate(task.labels)}
    out = []
    for value, line in zip(split.raw_labels, split.lines):
        label = _as_label_text(value) if value is not None else ""
        if label not in index:
            raise UserError(f"{split.path}:{line}: label {label!r} in column '{task.label_column}' is not one of the "
                            f"task's labels ({', '.join(task.labels)}; task.labels)")
        out.append(index[label])
    return out


class Encoded(torch.utils.data.Dataset):
    """Tokenised examples: model inputs as lists of ids, and the label of each."""

    def __init__(self, features: dict[str, list[list[int]]], labels: list[int] | list[float]):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.features.items()}, "labels": self.labels[i]}

    def subset(self, n: int, seed: int) -> Encoded:
        """`n` examples drawn at random (the same for every training seed and method, given `seed`)."""
        if n <= 0 or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return Encoded({k: [v[i] for i in keep] for k, v in self.features.items()}, [self.labels[i] for i in keep])


def encode(split: Split, labels: list[int] | list[float], tokenizer, max_len: int) -> Encoded:
    encoded = tokenizer(*split.texts, truncation=True, max_length=max_len)
    return Encoded({k: list(v) for k, v in encoded.items()}, labels)


def unknown_warning(encoded: Encoded, tokenizer, what: str) -> str | None:
    """The warning for a task file the tokenizer mostly cannot represent (its text tokens, specials aside)."""
    from alum.io.hf_dirs import unknown_share_warning

    unk, specials = tokenizer.unk_token_id, set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    ids = [i for row in encoded.features["input_ids"] for i in row if i not in specials]
    return unknown_share_warning(ids.count(unk) if unk is not None else 0, len(ids), tokenizer.unk_token, what)


class Collator:
    """Pads a list of examples to the longest in the batch; labels become long (classes) or float (regression)."""

    def __init__(self, tokenizer, regression: bool):
        self.tokenizer, self.dtype = tokenizer, torch.float32 if regression else torch.long

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        labels = torch.tensor([e["labels"] for e in examples], dtype=self.dtype)
        features = [{k: v for k, v in e.items() if k != "labels"} for e in examples]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt"))
        batch["labels"] = labels
        return batch


def load_task_file(path: str | Path, task: TaskConfig, tokenizer, max_len: int, what: str) -> Encoded:
    """Read, check and tokenise one file of the task (the task's labels must be known already)."""
    split = read_split(path, task, what)
    return encode(split, label_ids(task, split), tokenizer, max_len)
