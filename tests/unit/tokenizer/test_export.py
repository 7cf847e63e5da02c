"""The directory we write loads in transformers exactly as its own `save_pretrained` output does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import AddedToken

from alum.config import from_dict
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.export import save_hf
from alum.tokenizer.pipeline import add_post_processor, build_tokenizer, build_trainer, specials_of

TEXTS = ["The game was won", " a <mask> b\n", "日本 😀", "x [MASK] y"]
PAIR = ("first part", "second part")


def trained(style: str):
    cfg = from_dict(TokenizerConfig, {"special_tokens": style, "bpe": {"vocab_size": 300, "min_frequency": 1}})
    tokenizer, trainer = build_tokenizer(cfg), build_trainer(cfg)
    tokenizer.train_from_iterator(["the game was won by the first part of the second"] * 20, trainer)
    add_post_processor(tokenizer, cfg)
    return tokenizer, cfg


def save_with_transformers(tokenizer, cfg, directory: Path) -> None:
    """The reference: what the guide prescribes, PreTrainedTokenizerFast(...).save_pretrained(dir)."""
    from transformers import PreTrainedTokenizerFast

    specials = specials_of(cfg)
    roles = {
        role: AddedToken(token, lstrip=token in specials.lstrip, rstrip=False, normalized=False, special=True)
        for role, token in specials.roles.items()
    }
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=cfg.model_max_length, padding_side=cfg.padding_side,
        clean_up_tokenization_spaces=False, model_input_names=list(specials.model_input_names), **roles,
    ).save_pretrained(str(directory))


def observed(directory: Path) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    return {
        "class": type(tok).__name__,
        "fast": tok.is_fast,
        "specials": {role: str(tok.special_tokens_map.get(role)) for role in tok.SPECIAL_TOKENS_ATTRIBUTES},
        "special_ids": sorted(tok.all_special_ids),
        "added": {i: (t.content, t.lstrip, t.rstrip, t.special, t.normalized)
                  for i, t in tok.added_tokens_decoder.items()},
        "model_max_length": tok.model_max_length,
        "padding_side": tok.padding_side,
        "input_names": tok.model_input_names,
        "clean_up": tok.clean_up_tokenization_spaces,
        "len": len(tok),
        "single": [dict(tok(t)) for t in TEXTS],
        "pair": dict(tok(*PAIR)),
        "decoded": [tok.decode(tok(t)["input_ids"]) for t in TEXTS],
        "padded": dict(tok(TEXTS, padding=True)),
    }


@pytest.mark.parametrize("style", ["roberta", "bert"])
def test_loads_like_save_pretrained(tmp_path, style):
    tokenizer, cfg = trained(style)
    ours, reference = tmp_path / "ours", tmp_path / "reference"
    ours.mkdir()
    save_hf(tokenizer, cfg, ours)
    save_with_transformers(tokenizer, cfg, reference)
    assert observed(ours) == observed(reference)


def test_config_names_the_portable_class_and_every_special_token(tmp_path):
    tokenizer, cfg = trained("roberta")
    save_hf(tokenizer, cfg, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["added_tokens_decoder"]["4"] == {
        "content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False,
        "special": True,
    }
    assert [config["added_tokens_decoder"][str(i)]["content"] for i in range(5)] == list(specials_of(cfg).tokens)
