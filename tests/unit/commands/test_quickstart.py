"""`alum quickstart` (alum/commands/quickstart.py): it composes the stages' `run` functions (each monkeypatched
here, so nothing trains); a pretraining stage that stopped on a signal stops the quickstart too, rather than
fine-tuning a model that was never exported."""

from __future__ import annotations

import json

import pytest

import alum.commands.evaluate
import alum.finetune.evaluate
import alum.finetune.run
import alum.pretrain.train
import alum.tokenizer.train
from alum.cli import main
from alum.commands.quickstart import SST2
from alum.finetune.config import AttackConfig, EvaluateConfig


def test_a_pretraining_stopped_by_ctrl_c_stops_the_quickstart(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(alum.tokenizer.train, "run", lambda cfg: {"vocab_size": 4096})
    monkeypatch.setattr(alum.pretrain.train, "run", lambda cfg: {"step": 3, "stopped": True, "signal": "SIGINT"})
    monkeypatch.setattr(alum.finetune.run, "run", lambda cfg: pytest.fail("fine-tuned a model never exported"))
    assert main(["quickstart", "--output", str(tmp_path / "qs")]) == 130
    assert capsys.readouterr().err.strip() == "alum quickstart: interrupted"
    assert not (tmp_path / "qs" / "quickstart.json").exists()  # not a finished quickstart


def test_the_quickstart_calls_the_evaluate_stage_not_the_command(tmp_path, monkeypatch, capsys):
    out, asked = tmp_path / "qs", []
    summary = {"file": "dev.tsv", "model": "best", "accuracy": 0.75, "attack_accuracy": 0.5}

    def evaluate(cfg):
        asked.append(cfg)
        return summary

    monkeypatch.setattr(alum.tokenizer.train, "run", lambda cfg: {"vocab_size": 4096})
    monkeypatch.setattr(alum.pretrain.train, "run", lambda cfg: {"val_loss": 5.0, "val_accuracy": 0.1})
    monkeypatch.setattr(alum.finetune.run, "run", lambda cfg: {"metric": "accuracy", "mean": 0.8})
    monkeypatch.setattr(alum.finetune.evaluate, "run", evaluate)
    monkeypatch.setattr(alum.commands.evaluate, "run", lambda args: pytest.fail("went through `alum evaluate`"))
    assert main(["quickstart", "--output", str(out)]) == 0
    # the command's defaults, as a config: the model the fine-tuning exported, the task saved with it
    assert asked == [EvaluateConfig(models=[str(out / "finetune" / "best")], file=str(SST2 / "dev.tsv"),
                                    attack=AttackConfig())]
    assert json.loads((out / "evaluate.json").read_text()) == summary
    printed = capsys.readouterr().out
    assert "evaluate" in printed and "accuracy 0.750, under attack 0.500" in printed
    assert (out / "quickstart.json").is_file()
