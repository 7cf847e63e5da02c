"""The model card writer: front matter YAML, the command as a shell takes it back, the size read from the
saved weights (a tied weight once), and a card replaced whole."""

from __future__ import annotations

import shlex

import yaml

from alum.io import model_card as mc
from support.models import tiny_mlm


def test_front_matter_parses_and_the_body_follows(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "_command", ["alum", "finetune", "--output", "my runs/x", "optim.lr=1e-3"])
    card = mc.ModelCard("t", "fill-mask", ["alum", "smart", "alum"], [("Part", ["- a: 1"])])
    path = mc.write_card(tmp_path, card)
    text = path.read_text(encoding="utf-8")
    front, body = text.removeprefix("---\n").split("\n---\n", 1)
    assert yaml.safe_load(front) == {"library_name": "transformers", "pipeline_tag": "fill-mask",
                                     "tags": ["alum", "smart"]}
    assert "\n# t\n\n## Part\n\n- a: 1\n" in body
    command = next(line for line in body.splitlines() if line.startswith("- command: "))
    assert shlex.split(command.removeprefix("- command: ").strip("`")) == mc._command  # quoted: the space survives
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # the .partial renamed away


def test_size_counts_the_saved_parameters_a_tied_weight_once(tmp_path):
    model = tiny_mlm("bert")  # its decoder shares the word embeddings
    model.save_pretrained(tmp_path)
    family, count = mc.weights_summary(tmp_path)
    assert family == "bert" and count == sum(p.numel() for p in model.parameters())


def test_code_survives_backticks():
    assert mc.code("a`b") == "``a`b``" and mc.code("ab") == "`ab`"
