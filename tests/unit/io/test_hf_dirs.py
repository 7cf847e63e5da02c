"""Tokenizer and model directories: every error names the path and the config key or flag it came from."""

from __future__ import annotations

import pytest

from alum.errors import UserError
from alum.io.hf_dirs import check_model_dir, load_tokenizer, max_tokens, save_tokenizer_for


def test_tokenizer_errors_name_the_key(tmp_path):
    with pytest.raises(UserError, match=r"tokenizer '.*nowhere' not found \(data.tokenizer\)$"):
        load_tokenizer(tmp_path / "nowhere", "data.tokenizer")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"'.*empty' is not a tokenizer directory transformers can load \(model\): "):
        load_tokenizer(tmp_path / "empty", "model")


def test_model_directory_errors_name_the_key(tmp_path):
    with pytest.raises(UserError, match=r"model directory '.*nowhere' not found \(model.path\)"):
        check_model_dir(tmp_path / "nowhere", "model.path")
    (tmp_path / "bare").mkdir()
    with pytest.raises(UserError, match=r"bare: no config.json, not a Hugging Face model directory \(model\)"):
        check_model_dir(tmp_path / "bare")
    (tmp_path / "bare" / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"bare: no weights \(model.safetensors or pytorch_model.bin\) in the model "
                                        r"directory \(model.path\)"):
        check_model_dir(tmp_path / "bare", "model.path")
    (tmp_path / "bare" / "model.safetensors").write_bytes(b"")
    assert check_model_dir(tmp_path / "bare") == tmp_path / "bare"


@pytest.mark.parametrize("family", ["bert", "roberta", "deberta-v2", "electra", "distilbert", "modernbert"])
def test_a_saved_tokenizer_says_how_many_tokens_its_model_takes(tmp_path, tokenizer_dir, family):
    """Every family's export: a sequence of model_max_length tokens fits the position embeddings, one more
    would not (RoBERTa's positions start after the padding index)."""
    import torch
    from transformers import AutoTokenizer

    from support.models import tiny_mlm

    model = tiny_mlm(family)  # 64 positions
    save_tokenizer_for(model, load_tokenizer(tokenizer_dir), tmp_path)
    length = AutoTokenizer.from_pretrained(tmp_path).model_max_length
    assert length == max_tokens(model.config) == (64 - 1 - model.config.pad_token_id if family == "roberta" else 64)
    ids = torch.full((1, length), 7)
    assert model(input_ids=ids).logits.shape[1] == length
    if family in ("bert", "roberta", "electra", "distilbert"):  # absolute positions: one token more is out of range
        with pytest.raises((IndexError, RuntimeError)):
            model(input_ids=torch.full((1, length + 1), 7))
