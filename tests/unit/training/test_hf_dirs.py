"""Tokenizer and model directories: every error names the path and the config key or flag it came from."""

from __future__ import annotations

import pytest

from alum.errors import UserError
from alum.training.hf_dirs import check_model_dir, load_tokenizer


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
