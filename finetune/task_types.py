"""One object per `task.type`, holding everything that differs between task types: how the model is
loaded, how files are read, checked and encoded, how batches are padded, the forward the perturbation core
calls, the divergence its label-free methods compare outputs with, and the metrics.

The training loop, the evaluation and `alum evaluate` ask `task_type(task)` and never branch on the type, so
a new type plugs in as one more class here (question answering did: `question_answering.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alum.errors import UserError
from alum.finetune.data import Collator, Encoded, encode, infer_labels, label_ids, read_split
from alum.finetune.metrics import task_metrics
from alum.finetune.model import load_classifier, make_forward
from alum.finetune.sources import task_rows
from alum.finetune.tasks import TaskConfig


class TaskType:
    name: str
    pipeline_tag: str  # the transformers pipeline an exported model serves (its model card says it)
    needs_labels = True  # a label set to size the head (question answering has none)

    def load_model(self, model_dir: Path, task: TaskConfig) -> tuple[nn.Module, list[str]]:
        """The model with a head sized for the task, and the names of the weights newly initialised."""
        raise NotImplementedError

    def sources(self, data, task: TaskConfig, given: dict[str, Any]) -> dict[str, Any]:
        """What `read` takes for every split the run reads (train, dev, the extra dev sets), by name: the
        config's files or dataset, or the `datasets.Dataset` objects in `given` in their place."""
        return task_rows(data, task, given)

    def read(self, source: Any, task: TaskConfig, what: str) -> Any:
        """A split read and checked for shape (labels are checked by `encode`)."""
        raise NotImplementedError

    def infer_labels(self, task: TaskConfig, train: Any) -> None:
        raise NotImplementedError

    def encode(self, split: Any, task: TaskConfig, tokenizer, max_len: int) -> Encoded:
        """Every label checked against the task, then the examples tokenised."""
        raise NotImplementedError

    def collator(self, tokenizer, task: TaskConfig):
        raise NotImplementedError

    def forward(self, model: nn.Module, task: TaskConfig):
        raise NotImplementedError

    def divergence(self, task: TaskConfig) -> str:
        return "kl"

    def gold(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """The gold values of a batch, row for row with what the forward returns as logits."""
        raise NotImplementedError

    def metrics(self, outputs: np.ndarray, gold: np.ndarray, task: TaskConfig) -> dict[str, float]:
        raise NotImplementedError

    def describe_labels(self, task: TaskConfig) -> Any:
        return task.id2label()

    def sizes(self, train: Encoded, dev: Encoded, extra: dict[str, Encoded]) -> str:
        """How much data the run has, for its first line: what the loop counts, in the task's units."""
        more = "".join(f" and {len(d)} {name} dev" for name, d in extra.items())
        return f"{len(train)} training and {len(dev)} dev{more} examples"

    def load_file(self, path: str | Path, task: TaskConfig, tokenizer, max_len: int, what: str) -> Encoded:
        """Read, check and encode one file (the task's labels must be known already)."""
        return self.encode(self.read(path, task, what), task, tokenizer, max_len)


class SequenceClassification(TaskType):
    """One class (or a score, for regression) per example: the GLUE tasks."""

    name = "sequence_classification"
    pipeline_tag = "text-classification"

    def load_model(self, model_dir, task):
        return load_classifier(model_dir, task)

    def read(self, path, task, what):
        return read_split(path, task, what)

    def infer_labels(self, task, train):
        infer_labels(task, train)

    def encode(self, split, task, tokenizer, max_len):
        return encode(split, label_ids(task, split), tokenizer, max_len)

    def collator(self, tokenizer, task):
        return Collator(tokenizer, task.regression)

    def forward(self, model, task):
        return make_forward(model, task.regression)

    def divergence(self, task):
        return "mse" if task.regression else "kl"

    def gold(self, batch):
        return batch["labels"].cpu().numpy()

    def metrics(self, outputs, gold, task):
        return task_metrics(outputs, gold, regression=task.regression)

    def describe_labels(self, task):
        return "regression" if task.regression else task.id2label()


def train_and_dev(data, task: TaskConfig, given: dict[str, Any], kind: str, own_formats: tuple[str, ...]):
    """The training and dev sources of a task type that evaluates one dev set and reads files in
    `own_formats` itself (CoNLL, SQuAD JSON): those files as paths, every other source as `datasets` rows."""
    extra = {name for name, rows in given.items() if rows is not None} - {"train", "dev"}
    if data.extra_dev_files or data.extra_dev_splits or extra:
        raise UserError(f"data.extra_dev_files: {kind} evaluates one dev set (data.dev_file, or data.dev_split)")
    return task_rows(data, task, given, own_formats)


def task_type(task: TaskConfig) -> TaskType:
    # here, not at the top: these modules subclass TaskType from this one
    from alum.finetune.question_answering import QuestionAnswering
    from alum.finetune.token_classification import TokenClassification

    types: dict[str, type[TaskType]] = {t.name: t for t in (SequenceClassification, TokenClassification,
                                                            QuestionAnswering)}
    return types[task.type]()
