"""Extractive question answering (SQuAD v1.1 and v2.0) as a task type, plugged together from `finetune/qa/`.

The model is `AutoModelForQuestionAnswering`. A question and its context become one or more windows of
`data.max_seq_len` tokens (`qa/features.py`: `task.stride` context tokens shared by neighbours, the question
cut to `task.max_query_length`); training and the perturbation core see windows, not questions. The forward
(`qa/forward.py`) returns each window's start and end logits as rows, (2B, T), with the positions no answer
can take (question, special tokens other than CLS, padding) at -1e4: so every label-free method (ALUM,
SMART with its teacher, VAT, R-Drop) takes its divergence per distribution, averaged over start and end and
over the batch's windows, and the label-based ones (FGSM, FGM, PGD, FreeAT, YOPO, FreeLB) climb and train on
the task loss, the mean of the start and end cross-entropies at the gold positions.

Scoring is per question, not per window: every window's batch row carries its `window` (its position in the
file's windows) and `qa_file` (the file it came from, a number given when the file is encoded); `gold` gives
them back row for row with the logits, and `metrics` gathers each file's windows back to their questions,
takes the best span over a question's windows (`qa/postprocess.py`) and scores it with the official exact
match and F1 (`qa/squad_metrics.py`). So any subset or order of windows is scored right: a question is scored
when at least one of its windows was evaluated (`data.dev_subset` draws windows, not questions).

SQuAD v2.0: `exact_match`/`f1` are at `task.null_threshold` (0 by default), with the HasAns/NoAns breakdown;
`tuned_f1`/`tuned_exact_match` are at the threshold that maximises them on the same file
(`tuned_f1_threshold`, ...): tuned on the evaluated file itself, an optimistic figure, reported as v2.0's
official script does, never used to pick a checkpoint.

The embedding attack (`alum evaluate`, and the best checkpoint's dev figures) climbs the same task loss; for a
dev window the gold positions are the ones `qa/features.py` gives it (the answer's tokens when the window
holds the whole first gold answer, CLS otherwise), so a window is attacked away from what it should predict.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alum.errors import UserError
from alum.training.metrics import say
from alum.finetune.data import Encoded
from alum.finetune.sources import Rows, source_of
from alum.finetune.qa import features as qa_features
from alum.finetune.qa import reading, squad_metrics
from alum.finetune.qa.forward import qa_forward
from alum.finetune.qa.postprocess import answers, best_spans
from alum.finetune.task_types import TaskType, train_and_dev
from alum.finetune.tasks import TaskConfig

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "span_mask", "start_positions", "end_positions",
              "qa_file")


@dataclass
class QASplit:
    """A SQuAD file or `datasets` rows, read: the questions, and whether it is the training split (see
    `qa.features.encode`)."""

    path: Path | str  # the file, or the name of the dataset rows
    data: reading.QAData
    training: bool

    def __len__(self) -> int:
        return len(self.data.examples)


@dataclass
class EncodedFile:
    """What scoring needs of an encoded file: its questions and every window's offsets."""

    split: QASplit
    features: qa_features.QAFeatures


# Every question-answering file encoded in this process, by the number its windows carry as `qa_file`: the
# metrics are given only the logits and the gold rows, and need the texts and offsets to find the answers.
_FILES: dict[int, EncodedFile] = {}
_NUMBERS = itertools.count()


OWN_FORMATS = ("jsonl",)  # SQuAD JSON and JSON lines (a .json file is either), read by `qa/reading.py`


def read_squad(source: Rows | str | Path, task: TaskConfig, what: str) -> QASplit:
    """A split from a SQuAD JSON or JSON-lines file, or from `datasets` rows in the `squad` shape (a
    save_to_disk folder, parquet or arrow named as a file is read as rows)."""
    source = source_of(source, task, what, OWN_FORMATS)
    if isinstance(source, Rows):
        name, data = source.name, reading.read_rows(source.rows, source.name)
    else:
        name, data = source, reading.read(source)
    if data.warning:
        say(f"warning: {data.warning}")
    return QASplit(name, data, training=what == "train")


def encode_windows(split: QASplit, task: TaskConfig, tokenizer, max_len: int) -> Encoded:
    """The windows of every question as model inputs, with `span_mask`, the gold positions, and the numbers
    that lead back to the question (`window` as the row's label, `qa_file`). Runs after `infer_labels`, so a
    v2.0 file under a v1.1 task (named, or inferred from a training file without unanswerable questions) is
    refused: v1.1 never predicts "no answer", and its figures on such a file would mislead."""
    if task.version == "v1.1" and split.data.version == "v2.0":
        first = next(ex.id for ex in split.data.examples if ex.is_impossible)
        raise UserError(f"{split.path}: question {first!r} is unanswerable (SQuAD v2.0) but task.version is v1.1 "
                        "(named, or inferred from the training file); set task.version: v2.0")
    try:
        feats = qa_features.encode(split.data.examples, tokenizer, max_length=max_len, stride=task.stride,
                                   max_query_length=task.max_query_length, training=split.training)
    except UserError as err:  # the window's sizes are keys of the config: name them
        raise UserError(f"{split.path}: {err} (the keys: max_seq_len, task.max_query_length, task.stride)") from None
    if feats.dropped:
        say(f"warning: {split.path}: {len(feats.dropped)} answerable questions have no answer matching their "
            f"context (first: {feats.dropped[0]!r}); they are not trained on")
    if not len(feats):
        raise UserError(f"{split.path}: no question of the file can be trained on (no answer matches its context)")
    number = next(_NUMBERS)
    _FILES[number] = EncodedFile(split, feats)
    columns = feats.tensors()
    columns["qa_file"] = torch.full((len(feats),), number, dtype=torch.long)
    return Encoded({k: columns[k].tolist() for k in BATCH_KEYS if k in columns}, list(range(len(feats))))


def collate(windows: list[dict]) -> dict[str, torch.Tensor]:
    """Windows are padded to data.max_seq_len when encoded: a batch is their columns stacked; the label is the
    window's number."""
    batch = {k: torch.tensor([w[k] for w in windows], dtype=torch.long) for k in windows[0] if k != "labels"}
    batch["window"] = torch.tensor([w["labels"] for w in windows], dtype=torch.long)
    return batch


def gold_rows(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """(2B, 3), row for row with the forward's logits (B start rows, then B end rows): file, window, 0/1 (start/end)."""
    file, window = batch["qa_file"].cpu(), batch["window"].cpu()
    half = [torch.stack([file, window, torch.full_like(window, side)], dim=1) for side in (0, 1)]
    return torch.cat(half).numpy()


def qa_metrics(logits: np.ndarray, gold: np.ndarray, task: TaskConfig) -> dict[str, float]:
    """Exact match and F1 (percent) of the questions whose windows the rows hold (one file at a time)."""
    files = sorted(set(gold[:, 0].tolist()))
    if len(files) != 1:  # an evaluation reads one file; several would mix their questions
        raise ValueError(f"rows of {len(files)} question-answering files in one evaluation")
    encoded = _FILES[files[0]]
    starts, ends = gold[:, 2] == 0, gold[:, 2] == 1
    windows = gold[starts, 1].tolist()
    feats = _windows(encoded.features, windows)
    examples = encoded.split.data.examples
    spans = best_spans(examples, feats, torch.from_numpy(logits[starts]), torch.from_numpy(logits[ends]),
                       n_best=task.n_best, max_answer_length=task.max_answer_length)
    gold_texts = {ex.id: ex.answers for ex in examples if ex.id in spans}
    # `auto` is left by `alum evaluate --task` with a preset (nothing inferred it): the file says
    v2 = task.version == "v2.0" or task.version == "auto" and encoded.split.data.version == "v2.0"
    scores = squad_metrics.evaluate(gold_texts, answers(spans, task.null_threshold if v2 else None))
    out = {_name(k): float(v) for k, v in scores.items() if k not in ("total", "missing")}
    out["questions"] = float(len(gold_texts))
    if v2:
        tuned = squad_metrics.best_threshold(gold_texts, {q: p.text for q, p in spans.items()},
                                             {q: p.null_margin for q, p in spans.items()})
        for key in ("exact", "f1"):
            out[f"tuned_{_name(key)}"] = tuned[f"best_{key}"]
            out[f"tuned_{_name(key)}_threshold"] = float(tuned[f"best_{key}_thresh"])
    return out


def _name(key: str) -> str:
    """The official script's `exact` as `exact_match` (HasAns_exact -> HasAns_exact_match)."""
    return key.replace("exact", "exact_match")


def _windows(feats: qa_features.QAFeatures, rows: list[int]) -> qa_features.QAFeatures:
    """The windows `rows` of `feats`, in that order (what `best_spans` walks)."""
    picked = {}
    for f in fields(feats):
        column = getattr(feats, f.name)
        picked[f.name] = column if f.name == "dropped" or column is None else [column[i] for i in rows]
    return qa_features.QAFeatures(**picked)


def questions(data: Encoded) -> int:
    """The questions an encoded file's windows (or a subset of them) come from."""
    return len({(number, _FILES[number].features.example_index[window])
                for number, window in zip(data.features["qa_file"], data.labels)})


def load_reader(model_dir: Path, task: TaskConfig) -> tuple[nn.Module, list[str]]:
    """The encoder with a span head (two outputs per token: start and end)."""
    from transformers import AutoModelForQuestionAnswering

    from alum.finetune.model import load_auto

    return load_auto(AutoModelForQuestionAnswering, model_dir, "a question-answering model", num_labels=2,
                     id2label={0: "LABEL_0", 1: "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})


class QuestionAnswering(TaskType):
    name = "question_answering"
    pipeline_tag = "question-answering"
    needs_labels = False

    def load_model(self, model_dir, task):
        return load_reader(model_dir, task)

    def sources(self, data, task, given):
        return train_and_dev(data, task, given, "question answering", OWN_FORMATS)

    def read(self, path, task, what):
        return read_squad(path, task, what)

    def infer_labels(self, task, train):
        """No labels: the version, when `auto`, from the training file."""
        if task.version == "auto":
            task.version = train.data.version

    def encode(self, split, task, tokenizer, max_len):
        return encode_windows(split, task, tokenizer, max_len)

    def collator(self, tokenizer, task):
        return collate

    def forward(self, model, task):
        return qa_forward

    def gold(self, batch):
        return gold_rows(batch)

    def metrics(self, outputs, gold, task):
        return qa_metrics(outputs, gold, task)

    def describe_labels(self, task):
        return f"answer spans (SQuAD {task.version})"

    def sizes(self, train, dev, extra):
        """Windows are what the loop trains and evaluates on; questions are what is scored."""
        return (f"{len(train)} training and {len(dev)} dev windows ({questions(train)} and {questions(dev)} "
                "questions)")
