"""`alum finetune` and `alum evaluate` end to end on a tiny BERT built here: seeds, method comparison,
the summary, the exported best checkpoint, and robustness evaluation of one or two models; and the same stages
called from Python (their `run`)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from alum.cli import main
from alum.finetune import evaluate as evaluate_stage, run as finetune_stage
from alum.finetune.config import AttackConfig, EvaluateConfig, load_finetune_config
from alum.training.metrics import read_metrics
from support.data import sst2_subset, write_tsv

TINY = ["train.eval_every=3", "train.log_every=1", "engine.micro_batch_size=16", "optim.lr=1e-3",
        "data.max_seq_len=32", "train.eval_batch_size=32"]


def finetune(tmp_path, model_dir, *extra, train=64, dev=32, name="out"):
    train_file, dev_file = sst2_subset(tmp_path, train, dev)
    out = tmp_path / name
    code = main(["finetune", "--config", "sst2", "--model", str(model_dir),
                 "--train-file", str(train_file), "--dev-file", str(dev_file), "--output", str(out), *TINY, *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory, model_dir):
    """none and smart, two seeds each, six updates: the run the tests below read."""
    tmp = tmp_path_factory.mktemp("compare")
    return finetune(tmp, model_dir, "--method", "none,smart", "--seeds", "2", "--max-steps", "6")


def test_comparison_summary_has_every_seed_mean_and_std(compared):
    summary = json.loads((compared / "metrics.json").read_text())
    assert set(summary["methods"]) == {"none", "smart"} and summary["metric"] == "accuracy"
    for name, s in summary["methods"].items():
        assert s["method"] == name and s["seeds"] == [1, 2] and set(s["per_seed"]) == {"1", "2"}
        values = list(s["per_seed"].values())
        assert s["mean"] == pytest.approx(sum(values) / 2)
        assert s["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
        assert s["best_seed"] in (1, 2) and s["per_seed"][str(s["best_seed"])] == max(values)
        assert {"attack_accuracy", "seconds_per_update"} <= set(s["figures"])
        assert json.loads((compared / name / "metrics.json").read_text()) == s
    # Each method's seconds per update over none's, as measured (their order is not tested: on a CPU shared
    # with other work the wall times of six updates can rank either way); only SMART timed an adversarial part.
    none_time = summary["methods"]["none"]["figures"]["seconds_per_update"]["mean"]
    for name, s in summary["methods"].items():
        assert summary["time_vs_none"][name] == pytest.approx(s["figures"]["seconds_per_update"]["mean"] / none_time)
    assert summary["time_vs_none"]["none"] == 1.0
    adversarial = {m: s["figures"]["adv_seconds_per_update"]["mean"] for m, s in summary["methods"].items()}
    assert adversarial["none"] == 0 < adversarial["smart"]
    assert (compared / "dev_accuracy_per_epoch.png").stat().st_size > 0
    assert (compared / "config.yaml").is_file()


def test_seed_logs_hold_training_and_dev_records(compared):
    records = read_metrics(compared / "smart" / "seed-1" / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    dev = [r for r in records if "dev_accuracy" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert all(r["adv_loss"] is not None and r["delta_norm"] > 0 for r in train)  # SMART's term is on
    assert all(r["delta_effective"] > 0 and r["delta_lost"] == 0 and r["delta_cosine"] > 0.99 for r in train)
    assert [r["step"] for r in dev] == [3, 6]
    assert "best_attack_accuracy" in records[-1]


def test_best_checkpoint_loads_with_plain_transformers_and_label_names(compared):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    best = compared / "smart" / "best"
    model = AutoModelForSequenceClassification.from_pretrained(str(best))
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    tokenizer = AutoTokenizer.from_pretrained(str(best))
    with torch.no_grad():
        assert model(**tokenizer(["a good film"], return_tensors="pt")).logits.shape == (1, 2)


def test_same_seed_same_run_and_seeds_differ(compared, tmp_path, model_dir):
    again = finetune(tmp_path, model_dir, "--method", "smart", "--seeds", "1", "--max-steps", "6")
    first = [r["loss"] for r in read_metrics(compared / "smart" / "seed-1" / "metrics.jsonl") if "loss" in r]
    repeat = [r["loss"] for r in read_metrics(again / "seed-1" / "metrics.jsonl") if "loss" in r]
    other = [r["loss"] for r in read_metrics(compared / "smart" / "seed-2" / "metrics.jsonl") if "loss" in r]
    assert first == repeat
    assert first != other


def test_evaluate_prints_one_json_line_and_compares_two_models(compared, tmp_path, capsys):
    dev = write_tsv(tmp_path / "contrast.tsv", ["sentence", "label"], [["a good film", 1], ["a bad film", 0]] * 4)
    none, smart = str(compared / "none" / "best"), str(compared / "smart" / "best")
    capsys.readouterr()
    written = tmp_path / "results" / "smart.json"
    assert main(["evaluate", "--model", smart, "--file", str(dev), "--attack-eps", "0.5", "--output", str(written)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads(written.read_text()) == result  # the same object, in the file --output names
    assert result["model"] == smart and result["task"] == "sst2" and result["examples"] == 8
    assert result["attack"]["eps"] == 0.5
    assert result["attack_accuracy"] <= result["accuracy"]  # the attack climbs the loss: it cannot help
    assert (result["attack_accuracy"] * 8).is_integer()  # correct examples under attack, over the 8
    assert main(["evaluate", "--model", smart, "--file", str(dev), "--attack-eps", "1e-6"]) == 0
    grazed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert grazed["attack_accuracy"] == grazed["accuracy"] == result["accuracy"]  # a vanishing radius: clean
    assert main(["evaluate", "--model", none, smart, "--file", str(dev), "--task", "sst2", "--no-attack"]) == 0
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(both["models"]) == {none, smart} and "attack_accuracy" not in both["models"][none]
    assert both["models"][smart]["accuracy"] == result["accuracy"]  # the attack leaves the clean figure alone


def test_evaluate_reads_at_the_fine_tuning_length_and_reproduces_the_run(compared, capsys):
    """Without --max-seq-len, a model is evaluated at the length its fine-tuning cut examples to (TINY's 32,
    saved with the export): on its own dev file it gives the figure its run reported."""
    import yaml

    dev = yaml.safe_load((compared / "config.yaml").read_text())["data"]["dev_file"]
    summary = json.loads((compared / "smart" / "metrics.json").read_text())
    best = str(compared / "smart" / "best")
    capsys.readouterr()
    assert main(["evaluate", "--model", best, "--file", dev, "--no-attack"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["max_seq_len"] == 32
    assert result["accuracy"] == summary["per_seed"][str(summary["best_seed"])]
    assert main(["evaluate", "--model", best, "--file", dev, "--no-attack", "--max-seq-len", "48"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["max_seq_len"] == 48  # the flag wins


def test_the_stages_run_from_python_as_the_commands_do(compared, tmp_path, model_dir, capsys):
    """finetune's and evaluate's `run`, given a config, return what the commands write and print."""
    dev = write_tsv(tmp_path / "contrast.tsv", ["sentence", "label"], [["a good film", 1], ["a bad film", 0]] * 4)
    none, smart = str(compared / "none" / "best"), str(compared / "smart" / "best")
    heard = []
    cfg = EvaluateConfig(models=[none, smart], file=str(dev), attack=AttackConfig(eps=0.5, steps=2),
                         output=str(tmp_path / "both.json"))
    summary = evaluate_stage.run(cfg, on_model=lambda name, metrics: heard.append((name, metrics)))
    assert [name for name, _ in heard] == [none, smart] and summary["attack"]["eps"] == 0.5
    assert {name: {**summary["models"][name], **metrics} for name, metrics in heard} == summary["models"]
    assert json.loads((tmp_path / "both.json").read_text()) == summary
    capsys.readouterr()
    assert main(["evaluate", "--model", none, smart, "--file", str(dev), "--attack-eps", "0.5", "--attack-steps",
                 "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary

    train_file, dev_file = sst2_subset(tmp_path, 32, 16)
    out = tmp_path / "from-python"
    cfg = load_finetune_config("sst2", [*TINY, "train.seeds=1", "train.max_steps=1", "attack.enabled=false"], flags={
        "model": str(model_dir), "data.train_file": str(train_file), "data.dev_file": str(dev_file), "output": str(out)})
    summary = finetune_stage.run(cfg)
    assert summary == json.loads((out / "metrics.json").read_text())
    assert summary["method"] == "smart" and summary["seeds"] == [1] and (out / "best" / "config.json").is_file()


def test_every_evaluation_shows_its_progress(compared, tmp_path, model_dir, capsys):
    """The attack takes K ascent steps per batch (minutes on a CPU for a dev set): it and the clean pass show
    progress bars, in `alum evaluate` and in the fine-tuning run's own evaluations."""
    dev = write_tsv(tmp_path / "contrast.tsv", ["sentence", "label"], [["a good film", 1], ["a bad film", 0]] * 4)
    smart = str(compared / "smart" / "best")
    capsys.readouterr()
    assert main(["evaluate", "--model", smart, "--file", str(dev), "--attack-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert f"{smart}: clean:   0%|" in err and f"{smart}: under attack (2 steps):   0%|" in err and "0/8 [" in err
    finetune(tmp_path, model_dir, "--method", "none", "--max-steps", "1", "--attack-steps", "3")
    err = capsys.readouterr().err
    assert "none seed 1 dev: clean:" in err and "none seed 1 best: under attack (3 steps):" in err


def test_a_task_that_can_be_learned_is_learned(tmp_path, model_dir):
    """Sentiment by one cue word: the tiny model must get it, with plain training and with SMART."""
    rng = random.Random(0)
    filler = "the a film story plot it is was and of this movie".split()

    def rows(n):
        out = []
        for _ in range(n):
            label = rng.randint(0, 1)
            words = rng.sample(filler, 4) + [("great" if label else "dull")]  # both in the tiny vocabulary
            rng.shuffle(words)
            out.append([" ".join(words), label])
        return out

    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], rows(256))
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], rows(64))
    code = main(["finetune", "--config", "sst2", "--model", str(model_dir), "--train-file",
                 str(train), "--dev-file", str(dev), "--output", str(tmp_path / "out"), "--method", "none,smart",
                 "--seeds", "1", "--max-steps", "60", "--attack-eps", "0", *TINY, "train.eval_every=20", "optim.lr=3e-3"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for name in ("none", "smart"):
        assert summary["methods"][name]["mean"] >= 0.9, name
