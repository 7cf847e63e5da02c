"""Every core method fine-tunes through the DeepSpeed engine, on sentence pairs (jsonl, a generic task) and
on a regression task; FreeAT takes its optimizer steps inside the batch."""

from __future__ import annotations

import json
import random

from alum.adversarial import METHODS
from alum.cli import main
from alum.training.metrics import read_metrics
from support.data import write_jsonl, write_tsv

# Flags first: key=value overrides come after them (as with `alum pretrain`).
FLAGS = ["--max-steps", "2", "--seeds", "1", "--attack-eps", "0.05", "--attack-steps", "2"]
TINY = ["train.log_every=1", "engine.micro_batch_size=8", "data.max_seq_len=32"]
WORDS = "the a film story good bad great dull it is was and of this movie fun".split()


def sentence(rng) -> str:
    return " ".join(rng.sample(WORDS, 5))


def test_every_method_on_a_generic_pair_task(tmp_path, model_dir):
    rng = random.Random(0)
    rows = [{"premise": sentence(rng), "hypothesis": sentence(rng), "verdict": rng.choice(["yes", "no", "maybe"])}
            for _ in range(48)]
    train, dev = write_jsonl(tmp_path / "train.jsonl", rows[:32]), write_jsonl(tmp_path / "dev.jsonl", rows[32:])
    out = tmp_path / "out"
    code = main(["finetune", "--config", "generic", "--model", str(model_dir), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(out), "--method", ",".join(METHODS), *FLAGS,
                 "task.name=verdicts", "task.text_columns=[premise, hypothesis]", "task.label_column=verdict",
                 "task.labels=null", "task.label_names=null", "task.metric=f1", *TINY])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["methods"]) == set(METHODS)
    for name, cls in METHODS.items():
        records = [r for r in read_metrics(out / name / "seed-1" / "metrics.jsonl") if "loss" in r]
        assert len(records) == 2, name
        assert ("adv_loss" not in records[0]) == (name == "none"), name  # the baseline logs no adversarial figure
        # The summary's figures are the seed's final evaluation, as logged; the attack never helps accuracy.
        figures = summary["methods"][name]["figures"]
        final = read_metrics(out / name / "seed-1" / "metrics.jsonl")[-1]
        assert figures["attack_f1"]["mean"] == final["best_attack_f1"] and figures["f1"]["mean"] == final["best_f1"]
        assert figures["attack_accuracy"]["mean"] <= figures["accuracy"]["mean"], name
    config = json.loads((out / "smart" / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "maybe", "1": "no", "2": "yes"}  # inferred from the training file, sorted
    task = json.loads((out / "smart" / "best" / "alum_task.json").read_text())
    assert task["labels"] == ["maybe", "no", "yes"] and task["text_columns"] == ["premise", "hypothesis"]


def test_regression_task_trains_and_reports_correlations(tmp_path, model_dir):
    rng = random.Random(1)
    header = ["sentence1", "sentence2", "score"]
    rows = [[sentence(rng), sentence(rng), f"{rng.uniform(0, 5):.2f}"] for _ in range(40)]
    train, dev = write_tsv(tmp_path / "train.tsv", header, rows[:32]), write_tsv(tmp_path / "dev.tsv", header, rows[32:])
    out = tmp_path / "out"
    code = main(["finetune", "--config", "stsb", "--model", str(model_dir), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(out), "--method", "smart", *FLAGS, *TINY])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metric"] == "pearson" and {"spearman", "mse", "attack_pearson"} <= set(summary["figures"])
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
