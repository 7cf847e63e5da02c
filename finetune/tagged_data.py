"""Token-classification files: read (CoNLL columns or JSON lines), checked, and aligned to sub-words.

Sources: a CoNLL or JSON-lines file, read here; or rows from `datasets` (a dataset by name, a save_to_disk
folder, a parquet or arrow file, a `Dataset` object: `alum.finetune.sources`) with the JSON-lines columns.

CoNLL (2000/2003 style): one token per line, whitespace-separated columns, the tag in `task.tag_column`
(default the last); a blank line ends a sentence; `-DOCSTART-` lines separate documents and are dropped.
Every token line of a file has the same number of columns (conlleval's rule): a line with another count is
malformed and named. JSON lines: one object per sentence, the words in `task.text_columns[0]` (`tokens`)
and the tags in `task.label_column` (`ner_tags`), as strings or as ids into `task.labels` (the HF datasets
`conll2003` shape). Rows from `datasets` whose tag column is a list of `ClassLabel` (conll2003's `ner_tags`)
carry their tag names: the ids are read as those names, and a task without `labels` takes them in their
order, as a `datasets` user expects.

Alignment: each word's tag goes on its first sub-word; later sub-words, special tokens and padding get
-100 (no label: neither the loss nor the divergences nor the metrics see them). A sentence longer than
`max_len` sub-words is cut; the words cut off are counted and reported, and are missing from the metrics.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alum.errors import UserError
from alum.io.jsonl import json_objects
from alum.training.head_forwards import IGNORE
from alum.finetune.data import Encoded
from alum.finetune.sources import Rows, source_of
from alum.finetune.tasks import TaskConfig

OWN_FORMATS = ("conll", "jsonl")  # read here; any other source is read by `datasets`


@dataclass
class TaggedSplit:
    """A token-classification split, read: the words and tags of every sentence, and where each token is."""

    path: Path | str  # the file, or the name of the dataset rows
    words: list[list[str]]
    tags: list[list[Any]]  # as written: tag strings, or integer ids (JSON lines)
    lines: list[list[int]]  # the file line of every token (JSON lines: the sentence's); for rows, the row
    class_names: list[str] | None = None  # the tag column's ClassLabel names (rows only), in their order
    in_rows: bool = False  # `lines` hold row numbers of a dataset, not file lines

    def place(self, line: int) -> str:
        return f"{self.path} row {line}" if self.in_rows else f"{self.path}:{line}"

    def __len__(self) -> int:
        return len(self.words)


def read_tagged(source: Rows | str | Path, task: TaskConfig, what: str) -> TaggedSplit:
    """A split from a CoNLL or JSON-lines file, or from dataset rows (a save_to_disk folder, parquet or arrow
    named as a file is read as rows too)."""
    source = source_of(source, task, what, OWN_FORMATS)
    if isinstance(source, Rows):
        split = _read_rows(source, task)
    else:
        text = _text(source)
        split = (_read_jsonl(source, text, task) if task.file_format(source) == "jsonl"
                 else _read_conll(source, text, task))
    if not split.words:
        raise UserError(f"{split.path}: the {what} split has no sentences")
    return split


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x})") from None


def _read_conll(path: Path, text: str, task: TaskConfig) -> TaggedSplit:
    split = TaggedSplit(path, [], [], [])
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    width, width_line = None, 0

    def close() -> None:
        if words:
            split.words.append(list(words))
            split.tags.append(list(tags))
            split.lines.append(list(lines))
            words.clear(), tags.clear(), lines.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            close()
            continue
        if width is None:
            width, width_line = len(fields), number
            if width < 2:
                raise UserError(f"{path}:{number}: a CoNLL line needs a token and a tag, separated by whitespace; "
                                f"found {line.strip()!r}")
            if not -width <= task.tag_column < width:
                raise UserError(f"{path}:{number}: task.tag_column is {task.tag_column} but the line has {width} "
                                "columns")
        elif len(fields) != width:
            raise UserError(f"{path}:{number}: {len(fields)} columns, but line {width_line} has {width} "
                            f"(a CoNLL file has the same columns on every token line): {line.strip()!r}")
        words.append(fields[0])
        tags.append(fields[task.tag_column])
        lines.append(number)
    close()
    return split


def _read_jsonl(path: Path, text: str, task: TaskConfig) -> TaggedSplit:
    split = TaggedSplit(path, [], [], [])
    words_key, tags_key = task.text_columns[0], task.label_column
    for number, row in json_objects(path, text, f"'{words_key}' and '{tags_key}'"):
        for key, name in ((words_key, "task.text_columns"), (tags_key, "task.label_column")):
            if not isinstance(row.get(key), list):
                raise UserError(f"{path}:{number}: no list '{key}' ({name}); the object has: {', '.join(row)}")
        words, tags = row[words_key], row[tags_key]
        if len(words) != len(tags):
            raise UserError(f"{path}:{number}: {len(words)} words in '{words_key}' but {len(tags)} tags in '{tags_key}'")
        if words:
            split.words.append([str(w) for w in words])
            split.tags.append(list(tags))
            split.lines.append([number] * len(words))
    return split


def _read_rows(source: Rows, task: TaskConfig) -> TaggedSplit:
    rows = source.rows
    words_key, tags_key = task.text_columns[0], task.label_column
    split = TaggedSplit(source.name, [], [], [], in_rows=True)
    if rows is None:
        return split
    for key, name in ((words_key, "task.text_columns"), (tags_key, "task.label_column")):
        if key not in rows.column_names:
            raise UserError(f"{source.name}: no column '{key}' ({name}); the {source.kind} has: "
                            f"{', '.join(rows.column_names)}")
    inner = getattr(rows.features[tags_key], "feature", None)  # a list's element type
    names = list(inner.names) if type(inner).__name__ == "ClassLabel" else None
    split.class_names = names
    for row, (words, tags) in enumerate(zip(rows[words_key], rows[tags_key])):
        if not isinstance(words, list) or not isinstance(tags, list):
            raise UserError(f"{source.place(row)}: '{words_key}' and '{tags_key}' must be lists (a sentence's words "
                            "and tags)")
        if len(words) != len(tags):
            raise UserError(f"{source.place(row)}: {len(words)} words in '{words_key}' but {len(tags)} tags in "
                            f"'{tags_key}'")
        if names is not None:
            tags = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in tags]
        if words:
            split.words.append([str(w) for w in words])
            split.tags.append(list(tags))
            split.lines.append([row] * len(words))
    return split


def infer_tags(task: TaskConfig, train: TaggedSplit) -> None:
    """A task without `labels`: "O" first (id 0, as in the HF conll2003 set), then the training file's other
    tags sorted (so B-X comes before I-X, and the ids do not depend on the order the file shows them in)."""
    from alum.finetune.entities import split_tag

    if task.labels:
        return
    if train.class_names is not None:
        for tag in train.class_names:
            try:
                split_tag(tag)
            except ValueError as err:
                raise UserError(f"{train.path}: the ClassLabel of '{task.label_column}': {err}") from None
        task.labels = list(train.class_names)
        return
    seen: dict[str, int] = {}
    for tags, lines in zip(train.tags, train.lines):
        for tag, line in zip(tags, lines):
            if not isinstance(tag, str):
                raise UserError(f"{train.place(line)}: tag {tag!r} is an id; integer tags need task.labels (the tag "
                                "names in id order)")
            if tag not in seen:
                try:
                    split_tag(tag)
                except ValueError as err:
                    raise UserError(f"{train.place(line)}: {err}") from None
                seen[tag] = line
    task.labels = ["O", *sorted(t for t in seen if t != "O")]


def tag_ids(task: TaskConfig, split: TaggedSplit) -> list[list[int]]:
    """Every tag as its id in task.labels, each checked: a tag outside the set is named with its line."""
    index = {label: i for i, label in enumerate(task.labels)}
    out = []
    for tags, lines in zip(split.tags, split.lines):
        ids = []
        for tag, line in zip(tags, lines):
            if isinstance(tag, int) and not isinstance(tag, bool):
                if not 0 <= tag < len(task.labels):
                    raise UserError(f"{split.place(line)}: tag id {tag} is outside task.labels "
                                    f"(0-{len(task.labels) - 1})")
                ids.append(tag)
            elif isinstance(tag, str) and tag in index:
                ids.append(index[tag])
            else:
                raise UserError(f"{split.place(line)}: tag {tag!r} is not one of the task's labels "
                                f"({', '.join(task.labels)}; task.labels: name every tag there when the "
                                "training file lacks some)")
        out.append(ids)
    return out


def word_tokenizer(tokenizer):
    """The tokenizer, able to take words (`is_split_into_words`): that needs a fast tokenizer (it knows which
    word each sub-word came from). A byte-level BPE one (RoBERTa, GPT-2, the tokenizer stage's) must add the
    space that precedes a word inside a sentence, or every word is split as if it began the text (`of` and
    ` of` are different tokens): a copy is returned whose byte-level pre-tokenizer adds it. (transformers 5
    neither refuses words without it nor applies `add_prefix_space=True` to a generic fast tokenizer.)"""
    where = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{where}: token classification needs a fast tokenizer (one with a tokenizer.json), to "
                        "tell which word each sub-word comes from")
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if not _add_prefix_space(state.get("pre_tokenizer")):
        return tokenizer
    from tokenizers import Tokenizer

    words = copy.deepcopy(tokenizer)
    words._tokenizer = Tokenizer.from_str(json.dumps(state))  # the backend the fast tokenizer wraps
    return words


def _add_prefix_space(node: Any) -> bool:
    """Turn on add_prefix_space in every ByteLevel pre-tokenizer of a tokenizer.json's `pre_tokenizer`
    (alone, or inside a Sequence); whether one was off."""
    changed = False
    if isinstance(node, dict):
        if node.get("type") == "ByteLevel" and not node.get("add_prefix_space"):
            node["add_prefix_space"] = changed = True
        for child in node.get("pretokenizers") or []:
            changed = _add_prefix_space(child) or changed
    return changed


@dataclass
class Aligned:
    encoded: Encoded
    cut_sentences: int  # sentences longer than max_len sub-words
    cut_words: int  # their words that fell off the end (no label, not scored)


def align(split: TaggedSplit, ids: list[list[int]], tokenizer, max_len: int) -> Aligned:
    """Sub-word inputs, with each word's tag id on its first sub-word and -100 everywhere else."""
    tokenizer = word_tokenizer(tokenizer)
    encoded = tokenizer(split.words, is_split_into_words=True, truncation=True, max_length=max_len)
    labels, cut_sentences, cut_words = [], 0, 0
    for row, tags in enumerate(ids):
        word_of = encoded.word_ids(row)
        row_labels, previous = [], None
        for word in word_of:
            row_labels.append(IGNORE if word is None or word == previous else tags[word])
            if word is not None:
                previous = word
        kept = len({w for w in word_of if w is not None})
        if kept < len(tags):
            cut_sentences += 1
            cut_words += len(tags) - kept
        labels.append(row_labels)
    features = {k: list(v) for k, v in encoded.items()}
    return Aligned(Encoded(features, labels), cut_sentences, cut_words)


class TagCollator:
    """Pads the inputs to the longest in the batch, and the per-token labels with -100 on the same side."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        features = [{k: v for k, v in e.items() if k != "labels"} for e in examples]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt"))
        width = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        rows = [[IGNORE] * (width - len(e["labels"])) for e in examples]
        batch["labels"] = torch.tensor([pad + e["labels"] if left else e["labels"] + pad
                                        for pad, e in zip(rows, examples)], dtype=torch.long)
        return batch
