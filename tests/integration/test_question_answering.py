"""Question answering end to end on the embedded SQuAD v2.0 sample (cut into a training and a dev file: a test
fixture, not an evaluation protocol) and a tiny BERT: `alum finetune` with every core method, the exported
model, and `alum evaluate` clean and under the embedding attack; a v1.1 file (the sample's answerable
questions) too."""

from __future__ import annotations

import json

import pytest

from alum.adversarial import METHODS
from alum.cli import main
from support.qa import build_qa_model_dir, split_sample

pytestmark = pytest.mark.usefixtures("one_thread")

FLAGS = ["--max-steps", "1", "--seeds", "1", "--attack-eps", "0.05", "--attack-steps", "1"]
# 64-token windows, 16 of them shared, questions cut to 16 tokens: most questions take several windows
TINY = ["train.log_every=1", "engine.micro_batch_size=8", "data.max_seq_len=64", "task.stride=16",
        "task.max_query_length=16", "optim.lr=1e-3"]
SCORES = {"exact_match", "f1", "questions"}
V2_SCORES = {"HasAns_exact_match", "HasAns_f1", "NoAns_exact_match", "NoAns_f1", "tuned_exact_match",
             "tuned_exact_match_threshold", "tuned_f1", "tuned_f1_threshold"}


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
    return build_qa_model_dir(tmp_path_factory.mktemp("qa-model"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, qa_model):
    """Every method, one update each, on 3 training and 2 dev paragraphs of the v2.0 sample."""
    tmp = tmp_path_factory.mktemp("squad")
    train, dev = split_sample(tmp, (3, 2))
    out = tmp / "out"
    code = main(["finetune", "--config", "squad_v2", "--model", str(qa_model), "--train-file", str(train),
                 "--dev-file", str(dev), "--output", str(out), "--method", ",".join(METHODS), *FLAGS, *TINY])
    assert code == 0
    return out, dev


def test_every_method_fine_tunes_a_reader(trained):
    out, dev = trained
    summary = json.loads((out / "metrics.json").read_text())
    questions = sum(len(p["qas"]) for p in json.loads(dev.read_text())["data"][0]["paragraphs"])
    assert summary["metric"] == "f1" and set(summary["methods"]) == set(METHODS)
    for name, s in summary["methods"].items():
        figures = s["figures"]
        assert SCORES | V2_SCORES | {f"attack_{k}" for k in SCORES} <= set(figures), name
        assert figures["questions"]["mean"] == questions, name  # scored per question, not per window
        assert 0 <= figures["f1"]["mean"] <= 100 and figures["adv_skipped"]["mean"] == 0, name
    task = json.loads((out / "smart" / "best" / "alum_task.json").read_text())
    assert task["type"] == "question_answering" and task["version"] == "v2.0"


def test_the_export_is_a_plain_hf_reader(trained):
    """Loaded by transformers alone (its question-answering pipeline is gone from transformers 5: the span is
    read from the logits here as the pipeline did, the best start and end)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    out, _ = trained
    best = out / "none" / "best"
    model = AutoModelForQuestionAnswering.from_pretrained(str(best), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(best), local_files_only=True)
    context = "The Normans gave their name to Normandy, a region in France."
    enc = tokenizer("Who gave their name to Normandy?", context, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc)
    assert logits.start_logits.shape == enc["input_ids"].shape == logits.end_logits.shape
    assert model.config.num_labels == 2
    card = (best / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "answer spans (SQuAD v2.0)" in card


def test_evaluate_a_reader_clean_and_attacked(trained, capsys):
    out, dev = trained
    capsys.readouterr()
    code = main(["evaluate", "--model", str(out / "smart" / "best"), "--file", str(dev), "--attack-eps", "0.5",
                 "--attack-steps", "2", "--max-seq-len", "64"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["metric"] == "f1" and result["task"] == "squad_v2"
    for key in SCORES | V2_SCORES:
        assert key in result and f"attack_{key}" in result, key
    assert result["attack_questions"] == result["questions"] > 0


def test_squad_v1_trains_and_evaluates_without_no_answer_figures(tmp_path, qa_model, capsys):
    train, dev = split_sample(tmp_path, (4, 2), answerable_only=True)
    out = tmp_path / "out"
    code = main(["finetune", "--config", "squad_v1", "--model", str(qa_model), "--train-file", str(train),
                 "--dev-file", str(dev), "--output", str(out), "--method", "smart", *FLAGS, *TINY,
                 "task.metric=exact_match"])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metric"] == "exact_match" and not V2_SCORES & set(summary["figures"])
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "best"), "--file", str(dev), "--no-attack", "--max-seq-len", "64"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["questions"] == sum(len(p["qas"]) for p in json.loads(dev.read_text())["data"][0]["paragraphs"])
    assert "tuned_f1" not in result and "NoAns_f1" not in result
