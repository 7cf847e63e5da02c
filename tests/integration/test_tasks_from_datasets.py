"""Token classification and question answering from `datasets` sources: the same sentences or questions as a
CoNLL/SQuAD file, a parquet file, a save_to_disk folder and a `Dataset` object train with the same seed to
identical weights; a tag ClassLabel gives the tag names and their order; `alum evaluate --dataset` scores a
dataset's split as it scores the same rows as a file."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file

from alum.cli import main
from alum.finetune.config import load_finetune_config
from alum.finetune.run import run as finetune
from alum.finetune.sources import Rows
from alum.finetune.tagged_data import infer_tags, read_tagged
from alum.finetune.tasks import task_from
from support.data import wnut17_subset
from support.qa import build_qa_model_dir, split_sample
from support.threads import intra_op_threads

pytestmark = pytest.mark.usefixtures("one_thread")

NER = ["train.log_every=1", "engine.micro_batch_size=8", "data.max_seq_len=48", "optim.lr=1e-3",
       "train.seeds=1", "--max-steps", "3", "--no-attack", "--method", "smart"]
QA = ["train.log_every=1", "engine.micro_batch_size=8", "data.max_seq_len=64", "task.stride=16",
      "task.max_query_length=16", "optim.lr=1e-3", "train.seeds=1", "--max-steps", "2", "--no-attack",
      "--method", "smart"]


def weights(out):
    return load_file(str(out / "best" / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(preset, model_dir, out, *args):
    assert main(["finetune", "--config", preset, "--model", str(model_dir), "--output", str(out), *args]) == 0
    return out


def evaluated(capsys, best, *source) -> dict:
    """`alum evaluate` of one model, clean, on `source` (--file F or --dataset D ...): its JSON line."""
    capsys.readouterr()
    assert main(["evaluate", "--model", str(best), *map(str, source), "--no-attack"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def from_python(preset, model_dir, out, flags, train, dev):
    """`finetune.run` given Dataset objects, with nothing else to read."""
    overrides = [f for f in flags if "=" in f and not f.startswith("--")]
    cfg = load_finetune_config(preset, [*overrides, "train.max_steps=" + flags[flags.index("--max-steps") + 1],
                                        "attack.enabled=false", "adversarial.method=smart", f"output={out}"],
                               {"model": str(model_dir)})
    cfg.data.train_file = cfg.data.dev_file = ""
    finetune(cfg, train=train, dev=dev)
    return out


# ---- token classification ---------------------------------------------------------------------------------

def conll_rows(path, labels):
    """A CoNLL file as conll2003-shaped rows: tokens, and ner_tags as a list of ClassLabel ids."""
    sentences = [block.splitlines() for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]
    words = [[line.split()[0] for line in s] for s in sentences]
    tags = [[labels.index(line.split()[-1]) for line in s] for s in sentences]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=labels))})
    return datasets.Dataset.from_dict({"tokens": words, "ner_tags": tags}, features=features)


@pytest.fixture(scope="module")
def ner(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("ner-sources")
    train, dev = wnut17_subset(tmp, 24, 8)
    labels = load_finetune_config("wnut17", [], {"model": str(model_dir)}).task.labels
    rows = {"train": conll_rows(train, labels), "validation": conll_rows(dev, labels)}
    datasets.DatasetDict(rows).save_to_disk(str(tmp / "saved"))
    for name, split in rows.items():
        split.to_parquet(str(tmp / f"{name}.parquet"))
    with intra_op_threads(1):  # as the tests that compare with it run
        reference = cli("wnut17", model_dir, tmp / "conll", "--train-file", str(train), "--dev-file", str(dev), *NER)
    return {"tmp": tmp, "rows": rows, "labels": labels, "reference": weights(reference), "dev": dev,
            "model": reference}


def test_a_tagger_from_parquet_save_to_disk_and_objects_is_the_conll_model(ner, model_dir, tmp_path):
    tmp = ner["tmp"]
    parquet = cli("wnut17", model_dir, tmp_path / "parquet", "--train-file", str(tmp / "train.parquet"),
                  "--dev-file", str(tmp / "validation.parquet"), *NER)
    saved = cli("wnut17", model_dir, tmp_path / "saved", "--dataset", str(tmp / "saved"), *NER)
    objects = from_python("wnut17", model_dir, tmp_path / "objects", NER, ner["rows"]["train"],
                          ner["rows"]["validation"])
    for out in (parquet, saved, objects):
        assert same(weights(out), ner["reference"]), out.name
    # the comparison can fail: one sentence fewer trains another model
    fewer = from_python("wnut17", model_dir, tmp_path / "fewer", NER, ner["rows"]["train"].select(range(23)),
                        ner["rows"]["validation"])
    assert not same(weights(fewer), ner["reference"])


def test_a_tag_classlabel_gives_the_names_in_its_order(ner):
    """Without task.labels, the ClassLabel's names in their order (not "O" first and the rest sorted), and
    the ids read as those names."""
    names = ["B-person", "I-person", "O", "B-location", "I-location", "B-group", "I-group", "B-corporation",
             "I-corporation", "B-product", "I-product", "B-creative-work", "I-creative-work"]
    by_name = ner["rows"]["train"].cast_column("ner_tags", datasets.Sequence(datasets.ClassLabel(names=ner["labels"])))
    words = by_name["tokens"]
    tags = [[names.index(ner["labels"][t]) for t in s] for s in by_name["ner_tags"]]
    reordered = datasets.Dataset.from_dict(
        {"tokens": words, "ner_tags": tags},
        features=datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                    "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))}))
    task = task_from({"name": "mine", "type": "token_classification"}, source="test")
    split = read_tagged(Rows(reordered, "the train Dataset", kind="dataset"), task, "train")
    infer_tags(task, split)
    assert task.labels == names
    original = [[ner["labels"][t] for t in s] for s in ner["rows"]["train"]["ner_tags"]]
    assert split.tags == original  # every id read as its own name, whatever the order


def test_evaluate_a_tagger_on_a_dataset_split_as_on_its_file(ner, capsys):
    best = ner["model"] / "best"
    from_file = evaluated(capsys, best, "--file", ner["dev"])
    from_dataset = evaluated(capsys, best, "--dataset", ner["tmp"] / "saved")
    assert from_dataset["split"] == "validation" and from_dataset["examples"] == from_file["examples"] == 8
    for key in ("entity_f1", "token_accuracy"):
        assert from_dataset[key] == from_file[key], key
    assert evaluated(capsys, best, "--dataset", ner["tmp"] / "saved", "--split", "train")["examples"] == 24


# ---- question answering -----------------------------------------------------------------------------------

def squad_rows(path):
    """A SQuAD JSON file as rows of the `squad` dataset's shape."""
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                rows["id"].append(qa["id"]), rows["title"].append(article["title"])
                rows["context"].append(para["context"]), rows["question"].append(qa["question"])
                rows["answers"].append({"text": [a["text"] for a in qa["answers"]],
                                        "answer_start": [a["answer_start"] for a in qa["answers"]]})
    return datasets.Dataset.from_dict(rows)


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa-sources")
    model = build_qa_model_dir(tmp / "model")
    train, dev = split_sample(tmp, (2, 1))
    rows = {"train": squad_rows(train), "validation": squad_rows(dev)}
    datasets.DatasetDict(rows).save_to_disk(str(tmp / "saved"))
    rows["train"].to_parquet(str(tmp / "train.parquet"))
    with intra_op_threads(1):
        reference = cli("squad_v2", model, tmp / "json", "--train-file", str(train), "--dev-file", str(dev), *QA)
    return {"tmp": tmp, "rows": rows, "model": model, "reference": reference, "dev": dev}


def test_a_reader_from_parquet_save_to_disk_and_objects_is_the_json_model(qa, tmp_path):
    tmp, model, reference = qa["tmp"], qa["model"], weights(qa["reference"])
    parquet = cli("squad_v2", model, tmp_path / "parquet", "--train-file", str(tmp / "train.parquet"),
                  "--dev-file", str(qa["dev"]), *QA)
    saved = cli("squad_v2", model, tmp_path / "saved", "--dataset", str(tmp / "saved"), *QA)
    objects = from_python("squad_v2", model, tmp_path / "objects", QA, qa["rows"]["train"], qa["rows"]["validation"])
    for out in (parquet, saved, objects):
        assert same(weights(out), reference), out.name
    reversed_rows = qa["rows"]["train"].select(range(len(qa["rows"]["train"]) - 1, -1, -1))
    other = from_python("squad_v2", model, tmp_path / "other", QA, reversed_rows, qa["rows"]["validation"])
    assert not same(weights(other), reference)


def test_evaluate_a_reader_on_a_dataset_split_as_on_its_file(qa, capsys):
    best = qa["reference"] / "best"
    from_file = evaluated(capsys, best, "--file", qa["dev"])
    from_dataset = evaluated(capsys, best, "--dataset", qa["tmp"] / "saved")
    assert from_dataset["dataset"] == str(qa["tmp"] / "saved") and "file" not in from_dataset
    for key in ("exact_match", "f1", "questions"):
        assert from_dataset[key] == from_file[key], key
