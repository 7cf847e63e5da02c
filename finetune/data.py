"""A task's rows (from any source: `alum.finetune.sources`) checked, tokenised, and batched.

Every check runs before training and ends in one line naming the file and the line (or the dataset and the
row) or the key: a missing column, a label outside the task's set, a regression target that is not a number,
an empty split, a ClassLabel whose names disagree with the task's labels, an unlabelled (-1) row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alum.errors import UserError
from alum.finetune.sources import Rows, source_of
from alum.finetune.tasks import HUB_COLUMNS, TaskConfig


@dataclass
class Split:
    """A split, read and checked: the text columns, the labels as written, and where each row came from."""

    source: Rows
    texts: list[list[str]]  # one list per text column
    raw_labels: list[Any]
    class_names: list[str] | None = None  # the label column's ClassLabel names: raw labels are their ids

    @property
    def path(self) -> str:
        return self.source.name

    @property
    def lines(self) -> list[int] | None:
        """The file line of every row; None where rows have no lines (parquet, arrow, a dataset)."""
        first = self.source.first_line
        return None if first is None else list(range(first, first + len(self)))

    def __len__(self) -> int:
        return len(self.raw_labels)


def read_split(source: Rows | str | Path, task: TaskConfig, what: str) -> Split:
    """Check that the rows of `source` (or of a file or save_to_disk folder) are there and hold the task's
    columns; keep what the task reads."""
    source = source_of(source, task, what)
    rows = source.rows
    if rows is None or len(rows) == 0:
        raise UserError(f"{source.name}: the {what} split has no examples")
    rows = _hub_renamed(rows, task)
    for key, columns in (("task.text_columns", task.text_columns), ("task.label_column", [task.label_column])):
        for column in columns:
            if column not in rows.column_names:
                raise UserError(f"{source.name}: no column '{column}' ({key}); the {source.kind} has: "
                                f"{', '.join(rows.column_names)}")
    texts = [["" if t is None else str(t) for t in rows[c]] for c in task.text_columns]
    feature = rows.features.get(task.label_column)
    names = list(feature.names) if type(feature).__name__ == "ClassLabel" else None
    return Split(source, texts, list(rows[task.label_column]), names)


def _hub_renamed(rows, task: TaskConfig):
    """A GLUE preset read from the Hub's `glue` layout: its columns under the names of GLUE's files."""
    wanted = {*task.text_columns, task.label_column}
    renames = {hub: ours for hub, ours in HUB_COLUMNS.get(task.name, {}).items()
               if ours in wanted and ours not in rows.column_names and hub in rows.column_names}
    return rows.rename_columns(renames) if renames else rows


def _as_label_text(value: Any) -> str:
    """A class label as the task lists it: 1, 1.0 and "1" are the same class."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def infer_labels(task: TaskConfig, train: Split) -> None:
    """A generic classification task without `labels`: the training split's ClassLabel names in their order,
    or else its sorted distinct labels."""
    if task.regression or task.labels:
        return
    if train.class_names:
        task.labels = list(train.class_names)
    else:
        values = {_as_label_text(v) for v in train.raw_labels if v is not None and _as_label_text(v) != ""}
        numeric = all(v.lstrip("-").isdigit() for v in values)
        task.labels = sorted(values, key=int) if numeric else sorted(values)
    if len(task.labels) < 2:
        raise UserError(f"{train.path}: a classification task needs at least two labels, found {task.labels}")


def label_ids(task: TaskConfig, split: Split) -> list[int] | list[float]:
    """The labels as class ids (or floats for regression), checking every row against the task."""
    if task.regression:
        out = []
        for row, value in enumerate(split.raw_labels):
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                raise UserError(f"{split.source.place(row)}: label {value!r} in column '{task.label_column}' is not "
                                "a number (task.regression is true)") from None
        return out
    if split.class_names is not None:
        return _class_label_ids(task, split)
    index = {label: i for i, label in enumerate(task.labels)}
    out = []
    for row, value in enumerate(split.raw_labels):
        label = _as_label_text(value) if value is not None else ""
        if label not in index:
            raise UserError(f"{split.source.place(row)}: label {label!r} in column '{task.label_column}' is not one "
                            f"of the task's labels ({', '.join(task.labels)}; task.labels)")
        out.append(index[label])
    return out


def _class_label_ids(task: TaskConfig, split: Split) -> list[int]:
    """A ClassLabel column's ids are the task's when its names are the task's labels (or their display
    names) in the same order; -1, the ClassLabel for "no label" (GLUE's test splits), is refused."""
    names = split.class_names
    if names not in (task.labels, task.label_names):
        raise UserError(f"{split.path}: column '{task.label_column}' is a ClassLabel with names "
                        f"[{', '.join(names)}], not the task's labels [{', '.join(task.labels)}] in that order "
                        "(task.labels)")
    unlabelled = [row for row, value in enumerate(split.raw_labels) if value is None or value < 0]
    if unlabelled:
        raise UserError(f"{split.source.place(unlabelled[0])}: no gold label (-1 in column '{task.label_column}', "
                        f"{len(unlabelled)} rows; a test split?): train and evaluate on labelled splits")
    return list(split.raw_labels)


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
    """Read, check and tokenise one file (or `save_to_disk` folder) of the task (its labels known already)."""
    split = read_split(path, task, what)
    return encode(split, label_ids(task, split), tokenizer, max_len)
