"""Task files (alum/finetune/data.py): formats, encoding, and the one-line errors bad files get before training.
The task specs themselves are in test_tasks.py."""

from __future__ import annotations

import pytest

from alum.errors import UserError
from alum.finetune.data import Collator, encode, infer_labels, label_ids, read_split, unknown_warning
from alum.finetune.tasks import task_from
from support.data import generic, write_jsonl, write_tsv
from support.models import build_tokenizer
from support.paths import SST2


def test_glue_tsv_quirks_bom_and_unquoted_quotes(tmp_path):
    path = tmp_path / "mrpc.tsv"
    path.write_text('\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
                    '1\t1\t2\t"The witness " said\tHe said , " no .\n0\t3\t4\tnull\tNA\n', encoding="utf-8")
    task = task_from("mrpc")
    split = read_split(path, task, "train")
    assert split.texts == [['"The witness " said', "null"], ['He said , " no .', "NA"]]  # quotes and NA stay text
    assert label_ids(task, split) == [1, 0] and split.lines == [2, 3]


def test_headerless_file_takes_the_preset_column_names(tmp_path):
    path = write_tsv(tmp_path / "cola.tsv", None, [["gj04", 1, "", "A fine sentence ."], ["gj04", 0, "*", "Bad a ."]])
    split = read_split(path, task_from("cola"), "dev")
    assert split.texts == [["A fine sentence .", "Bad a ."]] and split.lines == [1, 2]


def test_jsonl_and_csv_pairs_with_inferred_numeric_labels(tmp_path):
    task = generic(text_columns=["premise", "hypothesis"], label_column="y")
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "y": y} for i, y in enumerate([10, 2, 2, 10, 1])]
    split = read_split(write_jsonl(tmp_path / "t.jsonl", rows), task, "train")
    infer_labels(task, split)
    assert task.labels == ["1", "2", "10"]  # numeric order, not string order
    assert label_ids(task, split) == [2, 1, 1, 2, 0]
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('premise,hypothesis,y\n"a, b",c,2\n', encoding="utf-8")
    assert read_split(csv_path, task, "dev").texts == [["a, b"], ["c"]]


def test_missing_column_names_file_column_and_key(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", ["text", "label"], [["good", 1]])
    with pytest.raises(UserError, match=r"train.tsv: no column 'sentence' \(task.text_columns\); the file has: text, label"):
        read_split(path, task_from("sst2"), "train")


def test_label_outside_the_set_names_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], [["good", 1], ["bad", 0], ["odd", 2]])
    task = task_from("sst2")
    with pytest.raises(UserError, match=r"dev.tsv:4: label '2' in column 'label' is not one of the task's labels \(0, 1"):
        label_ids(task, read_split(path, task, "dev"))


def test_regression_label_must_be_a_number(tmp_path):
    path = write_tsv(tmp_path / "s.tsv", ["sentence1", "sentence2", "score"], [["a", "b", "4.2"], ["c", "d", "high"]])
    task = task_from("stsb")
    with pytest.raises(UserError, match=r"s.tsv:3: label 'high' in column 'score' is not a number"):
        label_ids(task, read_split(path, task, "train"))


@pytest.mark.parametrize("content, message", [("", "the train file is empty"),
                                              ("sentence\tlabel\n", "the train split has no examples")])
def test_empty_split_is_an_error(tmp_path, content, message):
    path = tmp_path / "train.tsv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_split(path, task_from("sst2"), "train")


def test_unknown_suffix_and_unparseable_file(tmp_path):
    (tmp_path / "data.txt").write_text("x\n")
    with pytest.raises(UserError, match="cannot tell the format from the suffix '.txt'; set task.format"):
        read_split(tmp_path / "data.txt", task_from("sst2"), "train")
    (tmp_path / "bad.jsonl").write_text('{"sentence": "a", "label": 1}\n{not json\n')
    with pytest.raises(UserError, match="bad.jsonl: cannot read as jsonl"):
        read_split(tmp_path / "bad.jsonl", task_from("sst2"), "train")


def test_encoding_and_padding_of_the_embedded_sample(tmp_path):
    tokenizer = build_tokenizer(tmp_path, ["a good film", "a bad film"], vocab=50)
    task = task_from("sst2")
    split = read_split(SST2 / "dev.tsv", task, "dev")
    assert len(split) == 872
    data = encode(split, label_ids(task, split), tokenizer, max_len=16)
    assert max(len(ids) for ids in data.features["input_ids"]) == 16
    small = data.subset(10, seed=0)
    assert len(small) == 10 and small.labels == data.subset(10, seed=0).labels  # the same draw every time
    batch = Collator(tokenizer, regression=False)([small[i] for i in range(4)])
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["labels"].dtype.is_floating_point is False


def test_a_task_file_the_tokenizer_cannot_represent_is_warned_with_its_share(tmp_path):
    task = task_from("sst2")
    split = read_split(write_tsv(tmp_path / "t.tsv", ["sentence", "label"], [["a good film", 1], ["zz qq", 0]]),
                       task, "train")
    fits = build_tokenizer(tmp_path / "fits", ["a good film", "zz qq"], vocab=50)
    assert unknown_warning(encode(split, [1, 0], fits, 16), fits, "the file") is None
    narrow = build_tokenizer(tmp_path / "narrow", ["a good film"], vocab=50)  # zz and qq unknown: 2 of 5 tokens
    assert unknown_warning(encode(split, [1, 0], narrow, 16), narrow, "the file") == (
        "40.0% of the tokens of the file are the unknown token '[UNK]' (2 of 5): the tokenizer does not fit this text")
