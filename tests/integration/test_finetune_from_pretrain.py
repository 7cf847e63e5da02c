"""The stages join: what `alum pretrain` exports is a model directory `alum finetune` takes as it is."""

from __future__ import annotations

import json

import pytest

from alum.cli import main
from alum.pretrain import train as pretrain_train
from alum.training.metrics import read_metrics
from support.data import sst2_subset
from support.pretrain import tiny_config


LONG = "The tower is tall and the <mask> is wide. " + "It stands by the river, older than the town. " * 20


def test_pretrain_export_fine_tunes(tmp_path, tokenizer_dir, small_corpus):
    from transformers import pipeline

    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus)
    export = pretrain_train.run(cfg)["export"]
    # the export is one consistent HF directory: the pipelines cut an input longer than the model's positions
    fill = pipeline("fill-mask", model=export, device="cpu")
    assert len(fill.tokenizer(LONG)["input_ids"]) > cfg.data.block_size
    assert fill.tokenizer.model_max_length == cfg.data.block_size
    assert len(fill(LONG, tokenizer_kwargs={"truncation": True})) == 5  # the top 5 fillers of the mask
    train, dev = sst2_subset(tmp_path, 32, 16)
    out = tmp_path / "finetuned"
    code = main(["finetune", "--config", "sst2", "--model", str(export), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(out), "--seeds", "1", "--max-steps", "2",
                 "data.max_seq_len=32", "engine.micro_batch_size=8"])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["method"] == "smart" and summary["seeds"] == [1]
    # The figure is the best dev evaluation of the run, as its log recorded it: a count of correct examples.
    records = read_metrics(out / "seed-1" / "metrics.jsonl")
    dev = [r["dev_accuracy"] for r in records if "dev_accuracy" in r]
    assert summary["mean"] == summary["per_seed"]["1"] == max(dev) == records[-1]["best_accuracy"]
    n = summary["dev_examples"]
    assert n == 16 and summary["mean"] * n == pytest.approx(round(summary["mean"] * n))
    assert any(name.startswith("classifier") for name in summary["initialised"])  # a new head on the MLM body
    classify = pipeline("text-classification", model=str(out / "best"), device="cpu")
    assert classify(LONG, truncation=True)[0]["label"] in ("negative", "positive")
