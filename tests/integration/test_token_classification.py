"""Token classification end to end on the embedded WNUT-17 sample and a tiny BERT: `alum finetune` with every
core method, the exported tagger, and `alum evaluate` clean and under the embedding attack."""

from __future__ import annotations

import json

import pytest

from alum.adversarial import METHODS
from alum.cli import main
from support.data import wnut17_subset

pytestmark = pytest.mark.usefixtures("one_thread")

FLAGS = ["--max-steps", "2", "--seeds", "1", "--attack-eps", "0.05", "--attack-steps", "2"]
TINY = ["train.log_every=1", "engine.micro_batch_size=8", "data.max_seq_len=48", "optim.lr=1e-3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_dir):
    """Every method, two updates each, on 32 training and 12 dev sentences of the sample."""
    tmp = tmp_path_factory.mktemp("ner")
    train, dev = wnut17_subset(tmp, 32, 12)
    out = tmp / "out"
    code = main(["finetune", "--config", "wnut17", "--model", str(model_dir), "--train-file", str(train),
                 "--dev-file", str(dev), "--output", str(out), "--method", ",".join(METHODS), *FLAGS, *TINY])
    assert code == 0
    return out, dev


def test_every_method_fine_tunes_a_tagger(trained):
    out, _ = trained
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metric"] == "entity_f1" and set(summary["methods"]) == set(METHODS)
    for name, s in summary["methods"].items():
        figures = s["figures"]
        assert {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "attack_entity_f1",
                "attack_token_accuracy"} <= set(figures), name
        assert 0 <= figures["token_accuracy"]["mean"] <= 1 and figures["adv_skipped"]["mean"] == 0, name
    config = json.loads((out / "smart" / "best" / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and len(config["id2label"]) == 13  # O and B-/I- of six types


def test_the_export_is_a_plain_hf_tagger(trained):
    from transformers import AutoModelForTokenClassification

    out, _ = trained
    model = AutoModelForTokenClassification.from_pretrained(str(out / "none" / "best"), local_files_only=True)
    assert model.config.label2id["O"] == 0
    task = json.loads((out / "none" / "best" / "alum_task.json").read_text())
    assert task["type"] == "token_classification" and task["labels"][0] == "O"
    card = (out / "none" / "best" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card  # the pipeline that serves a tagger, not a classifier


def test_evaluate_a_tagger_clean_and_attacked(trained, capsys):
    out, dev = trained
    capsys.readouterr()
    code = main(["evaluate", "--model", str(out / "smart" / "best"), "--file", str(dev), "--attack-eps", "0.5",
                 "--attack-steps", "2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["metric"] == "entity_f1" and result["examples"] == 12
    for key in ("entity_f1", "entity_precision", "entity_recall", "token_accuracy"):
        assert 0 <= result[key] <= 1 and 0 <= result[f"attack_{key}"] <= 1


def test_json_lines_with_tag_ids_train_and_evaluate(tmp_path, model_dir, capsys):
    """The HF datasets conll2003 shape: {"tokens": [...], "ner_tags": [ids]}, the ids into task.labels."""
    from support.data import write_jsonl

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [{"tokens": ["the", "film", "was", "good"], "ner_tags": [0, 0, 0, 0]},
            {"tokens": ["john", "smith", "saw", "it", "in", "paris"], "ner_tags": [1, 2, 0, 0, 0, 3]},
            {"tokens": ["new", "york", "is", "fun"], "ner_tags": [3, 4, 0, 0]}] * 4
    train, dev = write_jsonl(tmp_path / "train.jsonl", rows), write_jsonl(tmp_path / "dev.jsonl", rows[:3])
    out = tmp_path / "out"
    code = main(["finetune", "--config", "wnut17", "--model", str(model_dir), "--train-file", str(train),
                 "--dev-file", str(dev), "--output", str(out), "--method", "smart", *FLAGS, *TINY,
                 "task.name=people", f"task.labels=[{', '.join(labels)}]"])
    assert code == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "best"), "--file", str(dev), "--no-attack"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "people" and result["examples"] == 3 and 0 <= result["entity_f1"] <= 1
