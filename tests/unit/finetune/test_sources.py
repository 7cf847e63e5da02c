"""Task rows from every source (alum/finetune/sources.py): parquet and arrow files, save_to_disk folders, a
dataset folder by name, Dataset objects; ClassLabel label mapping; the MNLI, QNLI and QQP presets on samples
in GLUE's own file layout."""

from __future__ import annotations

import datasets
import pytest

from alum.config import from_dict
from alum.errors import UserError
from alum.finetune.config import DataConfig
from alum.finetune.data import infer_labels, label_ids, read_split
from alum.finetune.sources import from_dataset, from_object, task_rows
from alum.finetune.tasks import task_from
from support.data import generic, write_tsv
from support.paths import REPO

GLUE_SAMPLES = REPO / "tests" / "data" / "glue"


def sst2_rows() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"sentence": ["a fine film", "dull", "bright and warm"], "label": [1, 0, 1]})


def hub_mnli(labels=("entailment", "neutral", "contradiction")) -> datasets.DatasetDict:
    """MNLI as the Hub's glue/mnli holds it: premise, hypothesis, a ClassLabel, idx; both dev halves."""
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(labels)), "idx": datasets.Value("int32")})

    def split(n, first):
        return datasets.Dataset.from_dict({"premise": [f"p{first + i}" for i in range(n)],
                                           "hypothesis": [f"h{first + i}" for i in range(n)],
                                           "label": [i % 3 for i in range(n)], "idx": list(range(n))}, features)

    return datasets.DatasetDict({"train": split(6, 0), "validation_matched": split(3, 100),
                                 "validation_mismatched": split(3, 200), "test_matched": split(2, 300)})


def test_parquet_arrow_and_save_to_disk_give_the_tsv_rows(tmp_path):
    tsv = write_tsv(tmp_path / "t.tsv", ["sentence", "label"], [["a fine film", 1], ['he said " no', 0]])
    rows = datasets.load_dataset("csv", data_files=str(tsv), delimiter="\t", quoting=3, split="train")
    rows.to_parquet(str(tmp_path / "t.parquet"))
    rows.save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    datasets.DatasetDict({"train": rows, "validation": rows}).save_to_disk(str(tmp_path / "dict"))
    task = task_from("sst2")
    want = read_split(tsv, task, "train")
    for source in (tmp_path / "t.parquet", arrow, tmp_path / "saved", tmp_path / "dict"):
        got = read_split(source, task, "train")
        assert (got.texts, label_ids(task, got)) == (want.texts, label_ids(task, want)), source
    assert want.lines == [2, 3] and read_split(tmp_path / "t.parquet", task, "train").lines is None


def test_class_label_gives_the_label_names_and_order_of_a_generic_task():
    features = datasets.Features({"text": datasets.Value("string"),
                                  "y": datasets.ClassLabel(names=["sports", "arts", "business"])})
    rows = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "y": [2, 0, 1]}, features)
    task = generic(text_columns=["text"], label_column="y")
    split = read_split(from_object(rows, "train"), task, "train")
    infer_labels(task, split)
    assert task.labels == ["sports", "arts", "business"]  # the ClassLabel's order, not sorted
    assert label_ids(task, split) == [2, 0, 1]


def test_a_preset_reads_the_hub_layout_and_its_class_label(tmp_path):
    hub_mnli().save_to_disk(str(tmp_path / "mnli"))
    data = from_dict(DataConfig, {"dataset": str(tmp_path / "mnli"), "dev_split": "validation_matched",
                                  "extra_dev_splits": {"mismatched": "validation_mismatched"}})
    task = task_from("mnli")
    rows = task_rows(data, task)
    assert list(rows) == ["train", "dev", "mismatched"]
    train = read_split(rows["train"], task, "train")
    assert train.texts[0][:2] == ["p0", "p1"] and train.texts[1][:2] == ["h0", "h1"]  # premise, hypothesis
    assert label_ids(task, train) == [0, 1, 2, 0, 1, 2]
    assert read_split(rows["mismatched"], task, "dev").texts[0] == ["p200", "p201", "p202"]
    qqp = datasets.Dataset.from_dict(
        {"question1": ["a?"], "question2": ["b?"], "label": [1], "idx": [0]},
        datasets.Features({"question1": datasets.Value("string"), "question2": datasets.Value("string"),
                           "label": datasets.ClassLabel(names=["not_duplicate", "duplicate"]),
                           "idx": datasets.Value("int32")}))
    task = task_from("qqp")  # labels "0", "1"; the Hub's names are the preset's label names
    assert label_ids(task, read_split(from_object(qqp, "dev"), task, "dev")) == [1]


def test_a_class_label_in_another_order_or_without_labels_is_refused(tmp_path):
    hub_mnli(labels=("contradiction", "entailment", "neutral")).save_to_disk(str(tmp_path / "sorted"))
    task = task_from("mnli")
    split = read_split(from_dataset(str(tmp_path / "sorted"), "", "train", "data.train_split"), task, "train")
    with pytest.raises(UserError, match=r"ClassLabel with names \[contradiction, entailment, neutral\], not the "
                                        r"task's labels \[entailment, neutral, contradiction\]"):
        label_ids(task, split)
    hub_mnli().save_to_disk(str(tmp_path / "hub"))
    test = hub_mnli()["test_matched"].cast_column("label", datasets.Value("int64")).map(lambda r: {"label": -1})
    test = test.cast_column("label", datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]))
    with pytest.raises(UserError, match=r"the dev Dataset row 0: no gold label \(-1 in column 'gold_label', 2 rows"):
        label_ids(task, read_split(from_object(test, "dev"), task, "dev"))


def test_a_local_dataset_folder_loads_by_name_and_unknown_splits_are_named(tmp_path):
    folder = tmp_path / "my_sst2"
    folder.mkdir()
    (folder / "train.csv").write_text("sentence,label\na fine film,1\ndull,0\n", encoding="utf-8")
    (folder / "validation.csv").write_text("sentence,label\nbright,1\n", encoding="utf-8")
    rows = from_dataset(str(folder), "", "validation", "data.dev_split")
    assert rows.rows["sentence"] == ["bright"] and rows.place(0) == f"{folder}[validation] row 0"
    with pytest.raises(UserError, match=r"no split 'dev' \(data.dev_split\)"):
        from_dataset(str(folder), "", "dev", "data.dev_split")
    sst2_rows().save_to_disk(str(tmp_path / "one"))
    with pytest.raises(UserError, match=r"a folder of one saved split, not of a DatasetDict; give it as data.train_file"):
        from_dataset(str(tmp_path / "one"), "", "train", "data.train_split")
    hub_mnli().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(UserError, match=r"saved: no split 'validation' \(data.dev_split\); the folder holds "
                                        r"train, validation_matched"):
        from_dataset(str(tmp_path / "saved"), "", "validation", "data.dev_split")


def test_dataset_and_files_together_are_refused_and_a_flag_sets_the_preset_files_aside():
    from alum.finetune.config import load_finetune_config

    with pytest.raises(UserError, match=r"data.dataset and data.train_file: give the task's files or a dataset"):
        load_finetune_config("sst2", ["data.dataset=glue"], {"model": "m", "data.train_file": "t.tsv"})
    cfg = load_finetune_config("sst2", [], {"model": "m", "data.dataset": "glue", "data.dataset_config": "sst2"})
    assert (cfg.data.dataset, cfg.data.train_file, cfg.data.dev_file) == ("glue", "", "")


@pytest.mark.parametrize("name, sizes, labels", [
    ("mnli", {"train": 12, "dev": 6, "mismatched": 6}, ["entailment", "neutral", "contradiction"]),
    ("qnli", {"train": 8, "dev": 4}, ["entailment", "not_entailment"]),
    ("qqp", {"train": 8, "dev": 4}, ["0", "1"]),
])
def test_presets_read_samples_in_glue_file_layout(name, sizes, labels):
    folder = GLUE_SAMPLES / name.upper()
    files = {"train_file": folder / "train.tsv", "dev_file": folder / "dev.tsv"}
    if name == "mnli":
        files = {"train_file": folder / "train.tsv", "dev_file": folder / "dev_matched.tsv",
                 "extra_dev_files": {"mismatched": str(folder / "dev_mismatched.tsv")}}
    data = from_dict(DataConfig, {k: v if isinstance(v, dict) else str(v) for k, v in files.items()})
    task = task_from(name)
    assert task.labels == labels
    splits = {n: read_split(rows, task, n) for n, rows in task_rows(data, task).items()}
    assert {n: len(s) for n, s in splits.items()} == sizes
    for split in splits.values():
        ids = label_ids(task, split)
        assert len(set(ids)) == len(labels)  # every class in every sample file
        assert all(split.texts[0]) and all(split.texts[1])
    raw = (folder / "train.tsv").read_text(encoding="utf-8")
    quoted = [t for column in splits["train"].texts for t in column if '"' in t]
    assert quoted and all(t in raw for t in quoted)  # quotes stay text, as written (GLUE's files are not quoted)


def test_the_mnli_preset_with_a_dataset_reads_both_dev_halves_of_the_hub_layout(tmp_path):
    from alum.finetune.config import load_finetune_config

    hub_mnli().save_to_disk(str(tmp_path / "glue-mnli"))
    cfg = load_finetune_config("mnli", [], {"model": "m", "data.dataset": str(tmp_path / "glue-mnli")})
    assert (cfg.data.train_file, cfg.data.dev_file, cfg.data.extra_dev_files) == ("", "", {})
    rows = task_rows(cfg.data, cfg.task)
    assert {name: r.rows["premise"][0] for name, r in rows.items()} == {
        "train": "p0", "dev": "p100", "mismatched": "p200"}
