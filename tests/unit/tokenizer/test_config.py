"""The tokenizer config: every preset loads and builds its pipeline; bad values stop before any work."""

from __future__ import annotations

import pytest

from alum.config import load_config
from alum.errors import UserError
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.pipeline import build_tokenizer, build_trainer
from support.paths import CONFIGS

PRESETS = CONFIGS / "tokenizer"


def test_the_three_presets_exist():
    assert {p.name for p in PRESETS.glob("*.yaml")} >= {"bytelevel-bpe.yaml", "bert-bpe.yaml", "sennrich-bpe.yaml"}


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_loads_and_builds(preset):
    cfg = load_config(TokenizerConfig, preset)
    tokenizer, trainer = build_tokenizer(cfg), build_trainer(cfg)
    assert trainer.vocab_size == cfg.bpe.vocab_size
    assert [t.content for t in trainer.special_tokens][:5] and tokenizer.decoder is not None


def test_presets_say_what_their_names_say():
    default = load_config(TokenizerConfig, PRESETS / "bytelevel-bpe.yaml")
    assert default == TokenizerConfig()  # the preset is the default of `alum tokenizer train`
    bert = load_config(TokenizerConfig, PRESETS / "bert-bpe.yaml")
    assert bert.special_tokens == "bert" and bert.bpe.algorithm == "byte-level"
    classic = load_config(TokenizerConfig, PRESETS / "sennrich-bpe.yaml")
    assert classic.bpe.algorithm == "classic" and classic.bpe.end_of_word_suffix == "</w>"
    tokenizer = build_tokenizer(classic)
    assert tokenizer.model.end_of_word_suffix == "</w>" and tokenizer.model.unk_token == "[UNK]"


def test_byte_level_keeps_every_byte_in_the_initial_alphabet():
    trainer = build_trainer(TokenizerConfig())
    assert len(trainer.initial_alphabet) == 256


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["bpe.vocab_size=200"], r"bpe.vocab_size 200 is smaller than the byte-level alphabet \(256\) plus 5 special "
                                 r"tokens \(261\)"),
        (["bpe.algorithm=classic", "bpe.vocab_size=5"], r"smaller than one character plus 5 special tokens \(6\)"),
        (["bpe.limit_alphabet=100"], "bpe.limit_alphabet applies to classic BPE only"),
        (["bpe.vocab_sise=100"], r"unknown key 'bpe.vocab_sise' \(did you mean 'vocab_size'\?\)"),
        (["bpe.algorithm=wordpiece"], "key 'bpe.algorithm' must be one of byte-level, classic"),
        (["special_tokens=gpt"], "key 'special_tokens' must be one of roberta, bert"),
        (["corpus.sample=0"], r"corpus.sample must be in \(0, 1\]"),
        (["corpus.sample=1.5"], r"corpus.sample must be in \(0, 1\]"),
        (["bpe.min_frequency=-1"], "bpe.min_frequency must be 0 or more"),
        (["normalize.unicode=nfkx"], "key 'normalize.unicode' must be one of none, nfc"),
        (["model_max_length=0"], "model_max_length must be positive"),
        (["bpe.algorithm=classic", "bpe.end_of_word_suffix="], "bpe.end_of_word_suffix must not be empty"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(overrides, message):
    with pytest.raises(UserError, match=message) as err:
        load_config(TokenizerConfig, PRESETS / "bytelevel-bpe.yaml", overrides)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(PRESETS / "bytelevel-bpe.yaml"))
