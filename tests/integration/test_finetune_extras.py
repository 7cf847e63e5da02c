"""`alum finetune` with early stopping and gradient checkpointing, and the model card in every directory it
exports (the stopping rule alone is in tests/unit/finetune/test_stopping.py, checkpointing's arithmetic in
tests/unit/training/test_recompute.py)."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from alum.cli import main
from alum.finetune import train as finetune_train
from alum.training.metrics import read_metrics
from support.data import sst2_subset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["train.log_every=1", "engine.micro_batch_size=16", "optim.lr=1e-3", "data.max_seq_len=32",
        "train.eval_batch_size=32", "--attack-steps", "1", "--seeds", "1"]


def finetune(tmp_path, model_dir, *extra, name="out"):
    train_file, dev_file = sst2_subset(tmp_path, 64, 32)
    out = tmp_path / name
    assert main(["finetune", "--config", "sst2", "--model", str(model_dir), "--train-file", str(train_file),
                 "--dev-file", str(dev_file), "--output", str(out), *TINY, *extra]) == 0
    return out


@pytest.fixture
def flat_metric(monkeypatch):
    """Every dev evaluation during training reports accuracy 0.5 (the final one, of the best checkpoint, is
    the real one): a run that learns nothing, as far as early stopping can see."""
    real = finetune_train.evaluate

    def flat(*args, **kwargs):
        metrics = real(*args, **kwargs)
        return {**metrics, "accuracy": 0.5} if len(args) < 5 and "attack" not in kwargs else metrics

    monkeypatch.setattr(finetune_train, "evaluate", flat)


def test_a_flat_metric_stops_after_patience_evaluations(tmp_path, model_dir, flat_metric, capsys):
    out = finetune(tmp_path, model_dir, "--method", "none", "--max-steps", "12", "train.eval_every=1",
                   "train.patience=3")
    assert "early stop at update 4: no gain over 3 evaluations since update 1\n" in capsys.readouterr().out
    result = json.loads((out / "seed-1" / "result.json").read_text())
    assert result["stopped_at"] == 4 and result["best_update"] == 1 and result["updates"] == 12
    assert [h["update"] for h in result["history"]] == [1, 2, 3, 4]
    assert json.loads((out / "metrics.json").read_text())["stopped_at"] == {"1": 4}
    steps = [r["step"] for r in read_metrics(out / "seed-1" / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4]  # no update after the stop
    assert "early stopping ended the seed at update 4" in (out / "best" / "README.md").read_text()


def test_patience_0_trains_every_update(tmp_path, model_dir, flat_metric):
    out = finetune(tmp_path, model_dir, "--method", "none", "--max-steps", "6", "train.eval_every=1")
    result = json.loads((out / "seed-1" / "result.json").read_text())
    assert result["stopped_at"] is None and len(result["history"]) == 6
    assert "stopped_at" not in json.loads((out / "metrics.json").read_text())


def test_gradient_checkpointing_trains_the_same_model(tmp_path, model_dir):
    plain = finetune(tmp_path, model_dir, "--max-steps", "2", "--method", "smart", name="plain")
    checkpointed = finetune(tmp_path, model_dir, "--max-steps", "2", "--method", "smart", "--gradient-checkpointing",
                            name="checkpointed")
    assert yaml.safe_load((checkpointed / "config.yaml").read_text())["train"]["gradient_checkpointing"] is True
    a, b = load_file(plain / "best" / "model.safetensors"), load_file(checkpointed / "best" / "model.safetensors")
    import torch

    for key in a:
        # two Adam updates from the same gradients up to float32 rounding (see test_recompute.py): Adam's
        # normalised step makes the weights agree to ~lr * (rounding / gradient), far below 1e-5 at lr 1e-3
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-5, msg=key)


def card(directory):
    """The card's front matter (parsed) and its body."""
    text = (directory / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def metric_rows(body: str) -> dict[str, list[float]]:
    """The dev-metrics table: metric -> the numbers in its row (this checkpoint's; mean and sd over seeds)."""
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 2 and cells[0] not in ("metric",) and not cells[1].startswith("-"):
            try:
                rows[cells[0]] = [float(x) for cell in cells[1:] for x in cell.split("±")]
            except ValueError:
                continue
    return rows


def test_every_exported_directory_has_a_card_whose_metrics_are_the_summarys(tmp_path, model_dir):
    from transformers import AutoModelForSequenceClassification

    out = finetune(tmp_path, model_dir, "--max-steps", "2", "--seeds", "2", "--method", "fgm",
                   "train.save_seed_models=true", "train.eval_every=1")
    summary = json.loads((out / "metrics.json").read_text())
    for directory, seed in ((out / "best", summary["best_seed"]), (out / "seed-1" / "best", 1),
                            (out / "seed-2" / "best", 2)):
        front, body = card(directory)
        assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
        assert front["tags"] == ["alum", "fgm", "sst2"] and "base_model" not in front  # a local path: body only
        assert f"`{model_dir}`" in body and "`fgm`, with these options" in body and "eps: " in body
        assert f"Seed {seed}, its best evaluation by accuracy" in body
        rows = metric_rows(body)
        for key, figure in summary["figures"].items():
            if key in rows:
                # six significant digits in the card: within half a unit of the sixth
                assert rows[key][0] == pytest.approx(figure["per_seed"][str(seed)], rel=5e-6, abs=1e-12), key
                if directory.name == "best" and directory.parent == out:  # best/: the spread over the seeds too
                    assert rows[key][1:] == pytest.approx([figure["mean"], figure["std"]], rel=5e-6, abs=1e-12)
        assert set(rows) == {"accuracy", "f1", "matthews", "attack_accuracy", "attack_f1", "attack_matthews"}
        assert "alum finetune --config sst2 --model" in body and "--seeds 2" in body
        AutoModelForSequenceClassification.from_pretrained(str(directory))  # the card leaves it loadable
