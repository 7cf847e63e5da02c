"""`alum finetune` from every kind of source gives the same model: SST-2 rows as a TSV file, a parquet file, a
save_to_disk folder (with the Hub's ClassLabel), a dataset folder by name, and Dataset objects from Python
train with the same seed to identical weights. MNLI reports its matched and mismatched dev sets apart."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file

from alum.cli import main
from alum.finetune.config import load_finetune_config
from alum.finetune.run import run as finetune
from support.data import sst2_subset
from support.paths import REPO
from support.threads import intra_op_threads

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["train.log_every=1", "engine.micro_batch_size=8", "optim.lr=1e-3", "data.max_seq_len=32",
        "train.eval_batch_size=16", "train.seeds=1", "--max-steps", "3", "--no-attack", "--method", "smart"]


def run(tmp_path, model_dir, name, *source):
    out = tmp_path / name
    assert main(["finetune", "--config", "sst2", "--model", str(model_dir), "--output", str(out), *source, *TINY]) == 0
    return out


def weights(out):
    return load_file(str(out / "best" / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 48 training and 16 dev rows of SST-2 in every form a source can take."""
    tmp = tmp_path_factory.mktemp("sources")
    train_tsv, dev_tsv = sst2_subset(tmp, 48, 16)
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    rows = {}
    for name, path in (("train", train_tsv), ("validation", dev_tsv)):
        plain = datasets.load_dataset("csv", data_files=str(path), delimiter="\t", quoting=3, split="train")
        plain.to_parquet(str(tmp / f"{name}.parquet"))
        rows[name] = plain.cast(features)  # the Hub's glue/sst2 labels: a ClassLabel (negative, positive)
    datasets.DatasetDict(rows).save_to_disk(str(tmp / "saved"))
    folder = tmp / "folder"  # a dataset folder that load_dataset reads by its data files' names
    folder.mkdir()
    for name in rows:
        rows[name].to_csv(str(folder / f"{name}.csv"), index=False)
    return {"tsv": (train_tsv, dev_tsv), "tmp": tmp, "rows": rows, "folder": folder}


@pytest.fixture(scope="module")
def from_tsv(sources, model_dir, tmp_path_factory):
    with intra_op_threads(1):  # as the tests that compare with it run
        train, dev = sources["tsv"]
        return run(tmp_path_factory.mktemp("tsv"), model_dir, "tsv", "--train-file", str(train), "--dev-file", str(dev))


def test_parquet_and_save_to_disk_folders_give_the_tsv_model(sources, from_tsv, model_dir, tmp_path):
    tmp = sources["tmp"]
    reference = weights(from_tsv)
    parquet = run(tmp_path, model_dir, "parquet", "--train-file", str(tmp / "train.parquet"),
                  "--dev-file", str(tmp / "validation.parquet"))
    saved = run(tmp_path, model_dir, "saved", "--dataset", str(tmp / "saved"))
    assert same(weights(parquet), reference)
    assert same(weights(saved), reference)
    saved_cfg = (saved / "config.yaml").read_text()
    assert f"dataset: {tmp / 'saved'}" in saved_cfg and "train_file: ''" in saved_cfg  # the preset's files set aside


def test_a_dataset_folder_by_name_and_dataset_objects_give_the_tsv_model(sources, from_tsv, model_dir, tmp_path):
    reference = weights(from_tsv)
    named = run(tmp_path, model_dir, "named", "--dataset", str(sources["folder"]))
    assert same(weights(named), reference)
    train, dev = sources["tsv"]
    cfg = load_finetune_config("sst2", [*TINY[:6], "train.max_steps=3", "attack.enabled=false",
                                        "adversarial.method=smart", f"output={tmp_path / 'objects'}"],
                               {"model": str(model_dir)})
    cfg.data.train_file = cfg.data.dev_file = ""  # nothing but the objects to read
    finetune(cfg, train=sources["rows"]["train"], dev=sources["rows"]["validation"])
    assert same(weights(tmp_path / "objects"), reference)


def test_a_different_row_order_gives_another_model(sources, from_tsv, model_dir, tmp_path):
    """The comparisons above can fail: the same rows in another order train another model."""
    cfg = load_finetune_config("sst2", [*TINY[:6], "train.max_steps=3", "attack.enabled=false",
                                        "adversarial.method=smart", f"output={tmp_path / 'shuffled'}"],
                               {"model": str(model_dir)})
    finetune(cfg, train=sources["rows"]["train"].shuffle(seed=0), dev=sources["rows"]["validation"])
    assert not same(weights(tmp_path / "shuffled"), weights(from_tsv))


def test_mnli_reports_matched_and_mismatched_apart(model_dir, tmp_path):
    glue = REPO / "tests" / "data" / "glue" / "MNLI"
    out = tmp_path / "mnli"
    assert main(["finetune", "--config", "mnli", "--model", str(model_dir), "--output", str(out),
                 "--train-file", str(glue / "train.tsv"), "--dev-file", str(glue / "dev_matched.tsv"),
                 f"data.extra_dev_files.mismatched={glue / 'dev_mismatched.tsv'}", "train.eval_every=1",
                 *TINY[:6], "--max-steps", "2", "--attack-steps", "1", "--method", "none"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["task"] == "mnli" and summary["dev_examples"] == 6
    assert summary["extra_dev"]["mismatched"]["examples"] == 6
    figures = summary["figures"]
    for key in ("accuracy", "attack_accuracy", "mismatched_accuracy", "mismatched_attack_accuracy"):
        assert 0.0 <= figures[key]["mean"] <= 1.0, key
    assert summary["extra_dev"]["mismatched"]["mean"] == figures["mismatched_accuracy"]["mean"]
    exported = json.loads((out / "best" / "config.json").read_text())
    assert exported["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}


def test_evaluate_a_dataset_split_as_its_file(sources, from_tsv, capsys):
    """`alum evaluate --dataset` on the save_to_disk folder (the Hub's ClassLabel) scores as `--file` on the TSV."""
    best = str(from_tsv / "best")
    capsys.readouterr()
    assert main(["evaluate", "--model", best, "--file", str(sources["tsv"][1]), "--no-attack"]) == 0
    from_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", "--model", best, "--dataset", str(sources["tmp"] / "saved"), "--no-attack"]) == 0
    from_dataset = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_dataset["split"] == "validation" and from_dataset["examples"] == from_file["examples"] == 16
    assert from_dataset["accuracy"] == from_file["accuracy"]
