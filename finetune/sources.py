"""Where a task's rows come from, each made a `datasets.Dataset` before anything is checked or tokenised.

    a file             tsv, csv, jsonl (the task's format rules), parquet or arrow      data.train_file ...
    a saved dataset    a `save_to_disk` folder: one Dataset, or a DatasetDict and a split  data.train_file ...
    a named dataset    `datasets.load_dataset(name, config, split=...)`: a local dataset    data.dataset
                       folder, or a Hub name on a machine with network
    an object          a `datasets.Dataset` passed to `finetune()` / `prepare()` from Python

Every source gives the rows in its stored order, so one set of rows gives one model whatever held it.
A source that cannot be read stops the run in one line naming it and the key that chose it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alum.corpus import saved_dataset
from alum.errors import UserError
from alum.presets import data_file
from alum.finetune.tasks import TaskConfig


@dataclass
class Rows:
    """A split's rows and how to name one of them in a message: `file:line`, or `source row N`."""

    rows: Any  # datasets.Dataset, or None for a file with a header and no rows
    name: str
    first_line: int | None = None  # the file line of the first row; None where rows have no lines
    kind: str = "file"  # what holds the rows, for messages: file, dataset

    def place(self, index: int) -> str:
        return f"{self.name}:{self.first_line + index}" if self.first_line is not None else f"{self.name} row {index}"


def task_rows(data, task: TaskConfig, given: dict[str, Any] | None = None,
              own_formats: tuple[str, ...] = ()) -> dict[str, Rows | Path]:
    """The rows of every split the run reads, by name: train, dev, then the extra dev sets (MNLI's
    mismatched). `data` is the config's data section; `given` holds `datasets.Dataset` objects by split name,
    which take the place of the config's source for that split. A file in one of `own_formats` (a task
    type's own, read by its own reader: CoNLL, SQuAD JSON) is given back as its checked path."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    extras = data.extra_dev_splits if data.dataset else data.extra_dev_files
    names = list(dict.fromkeys(["train", "dev", *extras, *given]))
    out = {}
    for name in names:
        what = name if name in ("train", "dev") else f"{name} dev"
        split, split_key = {"train": (data.train_split, "data.train_split"),
                            "dev": (data.dev_split, "data.dev_split")}.get(
            name, (data.extra_dev_splits.get(name, name), f"data.extra_dev_splits.{name}"))
        if name in given:
            out[name] = from_object(given[name], what)
        elif data.dataset:
            out[name] = from_dataset(data.dataset, data.dataset_config, split, split_key)
        else:
            key = {"train": "data.train_file", "dev": "data.dev_file"}.get(name, f"data.extra_dev_files.{name}")
            path = {"train": data.train_file, "dev": data.dev_file}.get(name, extras.get(name))
            if not path:
                raise UserError(f"{key}: not set (a config key, or its flag: --train-file, --dev-file; or a dataset: "
                                "data.dataset, --dataset)")
            out[name] = from_file(path, task, what, split, split_key, own_formats)
    return out


def source_of(given: Rows | str | Path, task: TaskConfig, what: str,
              own_formats: tuple[str, ...] = ()) -> Rows | Path:
    """What a reader reads: `Rows` as given; a path (`alum evaluate --file`, a reader called from Python) as
    `from_file` makes it, a save_to_disk folder's split being `validation` except for training."""
    if isinstance(given, Rows):
        return given
    return from_file(given, task, what, "train" if what == "train" else "validation", "the split", own_formats)


def quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    # critical: a source datasets cannot parse is logged at ERROR level before it raises; the raise is ours to
    # report, in one line
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    return datasets


def from_object(rows: Any, what: str) -> Rows:
    import datasets

    if isinstance(rows, datasets.DatasetDict):
        raise UserError(f"the {what} rows: a DatasetDict ({', '.join(rows)}); pass one of its splits")
    if not isinstance(rows, datasets.Dataset):
        raise UserError(f"the {what} rows: expected a datasets.Dataset, got {type(rows).__name__}")
    return Rows(rows, f"the {what} Dataset", kind="dataset")


def task_file(path: str | Path, what: str) -> Path:
    """The file `path` names (or the shipped sample a `data/...` path names), checked to exist and hold bytes."""
    path = data_file(path)
    if not path.is_file():
        raise UserError(f"{what} file '{path}' not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the {what} file is empty")
    return path


def from_file(path: str | Path, task: TaskConfig, what: str, split: str, split_key: str,
              own_formats: tuple[str, ...] = ()) -> Rows | Path:
    """A task file, or a `save_to_disk` folder (a DatasetDict's `split`, chosen by `split_key`); a file in one
    of `own_formats` as its checked path, for the task type's own reader."""
    path = data_file(path)
    if path.is_dir():
        if not saved_dataset(path):
            raise UserError(f"{path}: a directory, not a {what} file nor a folder written by save_to_disk "
                            "(name a dataset folder with data.dataset)")
        return Rows(_saved(path, split, split_key), str(path), kind="dataset")
    task_file(path, what)
    fmt = task.file_format(path)
    if fmt in own_formats:
        return path
    # Rows start on line 2 below a header, line 1 without one (jsonl, or column_names given); a binary
    # format's rows have no line.
    first = None if fmt in ("parquet", "arrow") else 2 if fmt != "jsonl" and not task.column_names else 1
    return Rows(_load_file(path, fmt, task), str(path), first)


def from_dataset(name: str, config: str, split: str, split_key: str) -> Rows:
    """`data.dataset`: a `save_to_disk` folder, a local dataset folder, or a Hub name."""
    path = Path(name).expanduser()
    label = f"{name}{'/' + config if config else ''}[{split}]"
    if path.is_dir() and saved_dataset(path):
        if not (path / "dataset_dict.json").is_file():  # one split: it would serve as train and dev alike
            raise UserError(f"data.dataset {name}: a folder of one saved split, not of a DatasetDict; give it as "
                            "data.train_file or data.dev_file (--train-file, --dev-file)")
        return Rows(_saved(path, split, split_key), label, kind="dataset")
    datasets = quiet_datasets()
    local = path.is_dir()
    try:
        with _offline(local):  # a local folder needs nothing from the Hub: nothing is asked of it
            rows = datasets.load_dataset(str(path) if local else name, config or None, split=split)
    except Exception as err:
        # the outer message says what failed ("Couldn't reach 'glue' on the Hub (OfflineModeIsEnabled)"), the
        # innermost why; an unknown split may be said by either
        message, cause = _first_line(err), _cause(err)
        for text in (message, cause):
            if "nknown split" in text or "Bad split" in text:
                raise UserError(f"data.dataset {name}: no split '{split}' ({split_key}): {text}") from None
        what = "a local folder that holds no dataset" if local else "not a local folder; from the Hub"
        raise UserError(f"data.dataset {name}: cannot load ({what}): {message}") from None
    return Rows(rows, label, kind="dataset")


def _saved(path: Path, split: str, split_key: str):
    datasets = quiet_datasets()
    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as err:
        raise UserError(f"{path}: cannot read the saved dataset: {_cause(err)}") from None
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise UserError(f"{path}: no split '{split}' ({split_key}); the folder holds {', '.join(saved)}")
        return saved[split]
    return saved


class _offline:
    """HF_DATASETS_OFFLINE for the duration of a load: `datasets` reads it into its config at import."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        import datasets.config as config

        self.saved = config.HF_HUB_OFFLINE, getattr(config, "HF_DATASETS_OFFLINE", None)
        if self.on:
            config.HF_HUB_OFFLINE = True
            if self.saved[1] is not None:
                config.HF_DATASETS_OFFLINE = True
        return self

    def __exit__(self, *exc):
        import datasets.config as config

        config.HF_HUB_OFFLINE = self.saved[0]
        if self.saved[1] is not None:
            config.HF_DATASETS_OFFLINE = self.saved[1]


def _load_file(path: Path, fmt: str, task: TaskConfig):
    datasets = quiet_datasets()
    if fmt in ("jsonl", "parquet", "arrow"):
        kwargs: dict[str, Any] = {}
        builder = "json" if fmt == "jsonl" else fmt
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
        message = _cause(err)
        if "corresponds to no data" in message:  # a header and no rows: datasets builds no split at all
            return None
        raise UserError(_first_bad_line(path, fmt) or f"{path}: cannot read as {fmt}: {message}") from None


def _cause(err: BaseException) -> str:
    """The first line of the innermost exception's message: the parser's, that says what was wrong."""
    cause = err
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    return _first_line(cause)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _first_bad_line(path: Path, fmt: str) -> str | None:
    """The line the parser failed on, when it is bad on its own (not UTF-8, or not JSON in a jsonl file): the
    parsers' own messages name a byte position, not a line. Runs only once reading has failed."""
    import json

    if fmt in ("parquet", "arrow"):
        return None
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


