"""Local Hugging Face directories as every stage reads them: tokenizers and model directories, checked with
errors that name the path and the config key or flag it came from. Never reaches the network."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from alum.errors import UserError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# The files that hold a tokenizer's vocabulary: a fast tokenizer's own file, WordPiece's, byte-level BPE's,
# SentencePiece's (DeBERTa-v2 calls its model spm.model).
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")
# A corpus or task file whose tokens are unknown in more than this share is warned about: a tokenizer that
# fits its text leaves next to none (byte-level BPE none at all).
UNKNOWN_SHARE_WARNING = 0.1


def load_tokenizer(path: str | Path, key: str | None = None):
    """A tokenizer from a local directory, or from a bare tokenizer.json (the file itself, or a directory that
    holds nothing else transformers can read), with a vocabulary of its own. `key`, the config key or flag
    that named `path`, goes into every error message."""
    tokenizer = _load_tokenizer(Path(path), key)
    check_vocabulary(tokenizer, Path(path), key)
    return tokenizer


def _load_tokenizer(path: Path, key: str | None):
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


def check_vocabulary(tokenizer, path: Path, key: str | None = None) -> None:
    """A tokenizer with a vocabulary beyond its special tokens. transformers 5 builds one from a model's
    config.json alone, with no tokenizer file in the directory: its vocabulary is the special tokens, and
    every word of every text becomes the unknown token."""
    specials = len(set(tokenizer.all_special_ids))
    if len(tokenizer) > specials:
        return
    files = path.is_file() or any((path / name).is_file() for name in VOCABULARY_FILES)
    what = "no vocabulary" if files else "no tokenizer files (" + ", ".join(VOCABULARY_FILES) + ")"
    raise UserError(
        f"'{path}' holds {what}{_named_by(key)}: the tokenizer made from it has its {specials} special tokens "
        f"alone, so every word would be {tokenizer.unk_token or 'unknown'}; name a tokenizer directory (from "
        "`alum tokenizer train`, or a model directory saved with its tokenizer)"
    )


def unknown_share_warning(unknown: int, tokens: int, unk_token: str | None, what: str) -> str | None:
    """The warning for text that the tokenizer mostly cannot represent, or None when it fits."""
    if tokens <= 0 or unknown / tokens <= UNKNOWN_SHARE_WARNING:
        return None
    return (f"{unknown / tokens:.1%} of the tokens of {what} are the unknown token {unk_token!r} "
            f"({unknown:,} of {tokens:,}): the tokenizer does not fit this text")


def _from_file(file: Path, path: Path, key: str | None):
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(file))
    except Exception as err:
        raise UserError(f"'{path}': cannot load the tokenizer{_named_by(key)}: {_first_line(err)}") from None


# Families whose position ids start after the padding index (RoBERTa's embeddings): of their
# max_position_embeddings, pad_token_id + 1 never hold a token.
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                            "data2vec-text", "longformer")


def max_tokens(config) -> int | None:
    """How many tokens one sequence may have for the model's position embeddings (None: no such limit known)."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    if getattr(config, "model_type", None) in _POSITIONS_AFTER_PADDING:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def save_tokenizer_for(model, tokenizer, directory: str | Path) -> None:
    """The tokenizer saved beside its model, its model_max_length the model's: pipelines and `truncation=True`
    cut inputs at model_max_length, and a tokenizer trained for 512 tokens beside a model of 64 positions
    would send longer inputs past the position embeddings."""
    import copy

    length = max_tokens(model.config)
    if length is not None and tokenizer.model_max_length != length:
        tokenizer = copy.copy(tokenizer)  # the caller's keeps its own
        tokenizer.model_max_length = length
    tokenizer.save_pretrained(str(directory))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load report and no per-shard progress bar from transformers (seed after seed of fine-tuning would repeat
    them; an export says what it wrote in one line)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


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
