"""`alum quickstart` (alum/commands/quickstart.py): a pretraining stage that stopped on a signal stops the
quickstart too, rather than fine-tuning a model that was never exported."""

from __future__ import annotations

import pytest

from alum.cli import main


def test_a_pretraining_stopped_by_ctrl_c_stops_the_quickstart(tmp_path, monkeypatch, capsys):
    import alum.finetune.run
    import alum.pretrain.train
    import alum.tokenizer.train

    monkeypatch.setattr(alum.tokenizer.train, "train_tokenizer", lambda cfg: {"vocab_size": 4096})
    monkeypatch.setattr(alum.pretrain.train, "run", lambda cfg: {"step": 3, "stopped": True, "signal": "SIGINT"})
    monkeypatch.setattr(alum.finetune.run, "finetune", lambda cfg: pytest.fail("fine-tuned a model never exported"))
    assert main(["quickstart", "--output", str(tmp_path / "qs")]) == 130
    assert capsys.readouterr().err.strip() == "alum quickstart: interrupted"
    assert not (tmp_path / "qs" / "quickstart.json").exists()  # not a finished quickstart
