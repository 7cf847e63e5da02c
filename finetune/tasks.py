"""What a downstream task is: its type, which columns hold the text and the label, the label set, and the metric.

A task is named after a GLUE preset (`sst2`, `mrpc`, `rte`, `cola`, `stsb`, `wnli`, `mnli`, `qnli`, `qqp`), which
fills every field,
or described field by field for any other dataset (the generic task). Fields set in a config override the
preset's, so `task: {name: sst2, metric: f1}` is SST-2 judged by F1.

`type` says what is predicted: one class (or score) per example (`sequence_classification`, the default),
or one tag per word (`token_classification`: named entities, in CoNLL files or JSON lines; see
`token_classification.py`), or an answer span per question (`question_answering`: SQuAD v1.1/v2.0 files; see
`question_answering.py`). How each type loads its model, reads its files and scores its predictions is
in `task_types.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alum.errors import UserError

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")
TOKEN_METRICS = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")
QA_METRICS = ("f1", "exact_match")


@dataclass
class TaskConfig:
    name: str = "generic"  # a GLUE preset fills the fields left unset below; any other name is a generic task
    type: Literal["sequence_classification", "token_classification", "question_answering"] = "sequence_classification"
    text_columns: list[str] | None = None  # one column (single sentence) or two (sentence pair)
    label_column: str | None = None
    # Label values as written in the files; a label's id is its position. Empty for a generic classification
    # task: the sorted distinct values of the training file.
    labels: list[str] | None = None
    label_names: list[str] | None = None  # the names in the exported config's id2label (default: labels)
    regression: bool | None = None  # a float target (STS-B) instead of a class
    metric: Literal["accuracy", "f1", "matthews", "pearson", "spearman", "entity_f1", "entity_precision",
                    "entity_recall", "token_accuracy", "exact_match"] | None = None  # picks the best checkpoint
    # auto: from the file's suffix (a `save_to_disk` folder is recognised as one whatever this says)
    format: Literal["auto", "tsv", "csv", "jsonl", "parquet", "arrow", "conll"] = "auto"
    # Token classification, CoNLL files: which whitespace-separated column holds the tag, counted from 0
    # (-1: the last, as in CoNLL-2003's `word POS chunk NER`)
    tag_column: int = -1
    quoting: Literal["auto", "none", "standard"] = "auto"  # auto: none for tsv (GLUE's convention), standard for csv
    column_names: list[str] | None = None  # for files without a header row (CoLA); None: the first row names them
    # Question answering (SQuAD files; question_answering.py). version: v2.0 has unanswerable questions and a
    # no-answer threshold; auto: v2.0 when the training file has an unanswerable question.
    version: Literal["auto", "v1.1", "v2.0"] = "auto"
    stride: int = 128  # context tokens shared by neighbouring windows (HF's stride; BERT's doc_stride is the step)
    max_query_length: int = 64  # question tokens kept
    max_answer_length: int = 30  # tokens in a predicted answer, at most
    n_best: int = 20  # start and end candidates per window
    null_threshold: float = 0.0  # v2.0: "no answer" when null score - best span score exceeds it

    def validate(self) -> None:
        if self.type == "question_answering":
            return self._validate_qa()
        if self.type != "sequence_classification":
            return self._validate_tagging()
        preset = GLUE.get(self.name.lower().replace("-", ""))  # "SST-2" and "sst2" name the same preset
        if preset is not None:  # fill from the preset what the config leaves unset
            self.name = self.name.lower().replace("-", "")
            for key, value in preset.items():
                if getattr(self, key) is None:
                    setattr(self, key, value)
        if self.format == "conll":
            raise ValueError("format: conll files hold token-classification tasks (type: token_classification)")
        if not self.text_columns:
            raise ValueError("text_columns: a generic task needs one or two text columns (or name a GLUE preset: "
                             f"{', '.join(GLUE)})")
        if len(self.text_columns) > 2:
            raise ValueError(f"text_columns: at most two (a sentence pair), got {len(self.text_columns)}")
        if not self.label_column:
            raise ValueError("label_column: a generic task needs the name of its label column")
        if self.regression is None:
            self.regression = False
        if self.metric is None:
            self.metric = "pearson" if self.regression else "accuracy"
        allowed = REGRESSION_METRICS if self.regression else CLASSIFICATION_METRICS
        if self.metric not in allowed:  # an entity metric too: those score token classification
            kind = "regression" if self.regression else "classification"
            raise ValueError(f"metric: '{self.metric}' does not fit a {kind} task (use {', '.join(allowed)})")
        if self.regression and self.labels:
            raise ValueError("labels: a regression task has no label set")
        if self.labels is not None:
            self.labels = [str(v) for v in self.labels]
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("labels: a label is listed twice")
        if self.label_names is not None and self.labels is not None and len(self.label_names) != len(self.labels):
            raise ValueError(f"label_names: {len(self.label_names)} names for {len(self.labels)} labels")

    def _validate_tagging(self) -> None:
        """A token-classification task: the word and tag columns of JSON lines, tags that chunk into entities,
        an entity metric."""
        from alum.finetune.entities import split_tag

        if self.name.lower().replace("-", "") in GLUE:
            raise ValueError(f"type: '{self.name}' is a GLUE sequence-classification preset, not a {self.type} task")
        if self.regression:
            raise ValueError("regression: a token-classification task predicts tags, not scores")
        self.regression = False
        self.text_columns = self.text_columns or ["tokens"]  # the HF datasets conll2003 shape
        if len(self.text_columns) != 1:
            raise ValueError("text_columns: a token-classification task reads one column of words")
        self.label_column = self.label_column or "ner_tags"
        self.metric = self.metric or "entity_f1"
        if self.format not in ("auto", "conll", "jsonl", "parquet", "arrow"):
            raise ValueError(f"format: a token-classification task reads conll, jsonl, parquet or arrow files, not "
                             f"{self.format}")
        if self.metric not in TOKEN_METRICS:
            raise ValueError(f"metric: '{self.metric}' does not fit a token-classification task "
                             f"(use {', '.join(TOKEN_METRICS)})")
        if self.labels is not None:
            self.labels = [str(v) for v in self.labels]
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("labels: a label is listed twice")
            for tag in self.labels:
                try:
                    split_tag(tag)
                except ValueError as err:
                    raise ValueError(f"labels: {err}") from None
        if self.label_names is not None:
            raise ValueError("label_names: a token-classification task names its tags in `labels`")

    def _validate_qa(self) -> None:
        """A question-answering task: SQuAD JSON or JSON lines, no label set, an answer metric, window sizes."""
        if self.name.lower().replace("-", "") in GLUE:
            raise ValueError(f"type: '{self.name}' is a GLUE sequence-classification preset, not a {self.type} task")
        for key in ("labels", "label_names", "text_columns", "label_column"):
            if getattr(self, key):
                raise ValueError(f"{key}: a question-answering task reads SQuAD files (question, context, answers); "
                                 "it has no such field")
        if self.regression:
            raise ValueError("regression: a question-answering task predicts answer spans, not scores")
        self.regression = False
        self.metric = self.metric or "f1"
        if self.metric not in QA_METRICS:
            raise ValueError(f"metric: '{self.metric}' does not fit a question-answering task "
                             f"(use {', '.join(QA_METRICS)})")
        if self.format not in ("auto", "jsonl", "parquet", "arrow"):
            raise ValueError(f"format: a question-answering task reads SQuAD JSON or JSON lines (auto, jsonl), "
                             f"parquet or arrow, not {self.format}")
        for key in ("stride", "max_answer_length", "n_best"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.max_query_length < 1:
            raise ValueError(f"max_query_length must be at least 1, got {self.max_query_length}")

    @property
    def num_labels(self) -> int:
        return 1 if self.regression else len(self.labels or [])

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names or self.labels or ["score"]))

    def file_format(self, path: str | Path) -> str:
        if self.format != "auto":
            return self.format
        suffix = Path(path).suffix.lower()
        known = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                 ".arrow": "arrow"}
        if self.type == "token_classification" and suffix not in (".parquet", ".arrow"):
            # CoNLL files go by many names (eng.train, train.txt, .conll)
            return "jsonl" if suffix in (".jsonl", ".json") else "conll"
        if suffix not in known:
            raise UserError(f"{path}: cannot tell the format from the suffix '{suffix}'; set task.format "
                            "(tsv, csv, jsonl, parquet, arrow)")
        return known[suffix]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The GLUE tasks as distributed by GLUE's download script (tsv; MRPC's header carries a UTF-8 BOM, read away
# by the loader). Each with the metric GLUE reports first for it.
GLUE: dict[str, dict[str, Any]] = {
    "sst2": dict(text_columns=["sentence"], label_column="label", labels=["0", "1"],
                 label_names=["negative", "positive"], metric="accuracy"),
    "mrpc": dict(text_columns=["#1 String", "#2 String"], label_column="Quality", labels=["0", "1"],
                 label_names=["not_equivalent", "equivalent"], metric="f1"),
    "rte": dict(text_columns=["sentence1", "sentence2"], label_column="label",
                labels=["entailment", "not_entailment"], metric="accuracy"),
    "cola": dict(text_columns=["sentence"], label_column="label", labels=["0", "1"],
                 label_names=["unacceptable", "acceptable"], metric="matthews",
                 column_names=["source", "label", "original_label", "sentence"]),
    "stsb": dict(text_columns=["sentence1", "sentence2"], label_column="score", regression=True, metric="pearson"),
    "wnli": dict(text_columns=["sentence1", "sentence2"], label_column="label", labels=["0", "1"],
                 label_names=["not_entailment", "entailment"], metric="accuracy"),
    # MNLI's files spell the labels out; the order is GLUE's (and the Hub's ClassLabel's), not alphabetical.
    # Its dev set comes in two halves, matched and mismatched genres: configs/finetune/mnli.yaml evaluates both.
    "mnli": dict(text_columns=["sentence1", "sentence2"], label_column="gold_label",
                 labels=["entailment", "neutral", "contradiction"], metric="accuracy"),
    "qnli": dict(text_columns=["question", "sentence"], label_column="label",
                 labels=["entailment", "not_entailment"], metric="accuracy"),
    "qqp": dict(text_columns=["question1", "question2"], label_column="is_duplicate", labels=["0", "1"],
                label_names=["not_duplicate", "duplicate"], metric="f1"),
}

# Where the Hub's `glue` dataset names a column otherwise than GLUE's files (Hub name -> the preset's): a
# preset reads either form; a column is renamed only when the preset's own name is missing.
HUB_COLUMNS: dict[str, dict[str, str]] = {
    "mrpc": {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"},
    "stsb": {"label": "score"},
    "mnli": {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
    "qqp": {"label": "is_duplicate"},
}


def task_from(value: str | dict[str, Any], source: str = "task") -> TaskConfig:
    """A task from a preset name or a mapping of fields (as saved next to an exported model)."""
    from alum.config import from_dict

    data = {"name": value} if isinstance(value, str) else value
    return from_dict(TaskConfig, data, source=source, prefix="task.")
