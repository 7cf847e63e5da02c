"""Local Hugging Face directories as every stage reads them: tokenizers and model directories, checked with
errors that name the path and the config key or flag it came from. Never reaches the network."""

from __future__ import annotations

import json
from pathlib import Path

from alum.errors import UserError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def load_tokenizer(path: str | Path, key: str | None = None):
    """A tokenizer from a local directory, or from a bare tokenizer.json (the file itself, or a directory that
    holds nothing else transformers can read). `key`, the config key or flag that named `path`, goes into
    every error message."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"tokenizer '{path}' not found{_named_by(key)}")
    from transformers import AutoTokenizer

    if path.is_file():
        return _from_file(path, path, key)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        # a corrupt one must not send us to the bare-tokenizer fallback, which would drop its special tokens
        if (path / name).is_file():
            try:
                json.loads((path / name).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                where = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
                raise UserError(f"{path / name}{where}: malformed JSON{_named_by(key)}") from None
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # transformers raises many types for a directory it cannot read
        if (path / "tokenizer.json").is_file():
            return _from_file(path / "tokenizer.json", path, key)
        raise UserError(f"'{path}' is not a tokenizer directory transformers can load{_named_by(key)}: "
                        f"{_first_line(err)}") from None


def _from_file(file: Path, path: Path, key: str | None):
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(file))
    except Exception as err:
        raise UserError(f"'{path}': cannot load the tokenizer{_named_by(key)}: {_first_line(err)}") from None


def check_model_dir(path: str | Path, key: str = "model") -> Path:
    """`path`, once it is known to hold a model config and weights."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"model directory '{path}' not found ({key})")
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: no config.json, not a Hugging Face model directory ({key})")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"{path}: no weights ({' or '.join(WEIGHT_FILES[::2])}) in the model directory ({key})")
    return path


def _named_by(key: str | None) -> str:
    return f" ({key})" if key else ""


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
