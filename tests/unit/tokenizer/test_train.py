"""Training: what transformers loads from the output, exact round trip of byte-level BPE, the special-token
styles, classic BPE with its end-of-word marker, normalisation, sampling, and the checks after training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from alum.config import from_dict, load_config
from alum.errors import UserError
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.train import OUTPUT_FILES, run
from support.paths import SAMPLE

# Strings that break careless tokenizers: spacing at the edges, control characters, every Unicode plane.
NASTY = [
    "Hello world",
    " leading space",
    "trailing space ",
    "  two  spaces  inside  ",
    "tab\tand\nnewline\r\nand CRLF\n",
    "\n\n\n",
    " ",
    "\x00\x01\x07\x1b[31mred\x1b[0m\x7f",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷",
    "CJK 日本語の文章 中文 한국어",
    "combining e\u0301 a\u0300\u0323 Z̤͔ͧ̑̓ä͖̭̈̇",
    "zero width\u200b\u200c\u200d joiners and BOM \ufeff",
    "right-to-left العربية עברית",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑∫√ and ﬁ ligature, ＦＵＬＬ width",
    "@-@ wiki @,@ tokens = = Heading = =",
    "ends with newline\n",
]


def make_config(tmp_path, name="tok", **sections) -> TokenizerConfig:
    data = {
        "corpus": {"files": [str(SAMPLE)]},
        "bpe": {"vocab_size": 600},
        "output": {"dir": str(tmp_path / name)},
        "progress": False,
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(TokenizerConfig, data)


def train(tmp_path, name="tok", **sections):
    cfg = make_config(tmp_path, name, **sections)
    warnings: list[str] = []
    report = run(cfg, warn=warnings.append)
    return Path(cfg.output.dir), report, warnings


def load(directory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return train(tmp_path_factory.mktemp("roberta"))[0]


@pytest.fixture(scope="module")
def roberta(roberta_dir):
    return load(roberta_dir)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load(train(tmp_path_factory.mktemp("bert"), special_tokens="bert")[0])


def test_output_directory_holds_exactly_the_documented_files(roberta_dir):
    assert sorted(p.name for p in roberta_dir.iterdir()) == sorted(OUTPUT_FILES)
    assert not [p for p in roberta_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_roberta_style_as_transformers_sees_it(roberta):
    assert roberta.is_fast
    assert roberta.convert_ids_to_tokens(list(range(5))) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    roles = (roberta.bos_token, roberta.eos_token, roberta.cls_token, roberta.sep_token)
    assert roles == ("<s>", "</s>", "<s>", "</s>")
    assert (roberta.pad_token_id, roberta.unk_token_id, roberta.mask_token_id) == (1, 3, 4)
    assert roberta.padding_side == "right" and roberta.model_max_length == 512
    assert len(roberta) == 600
    assert roberta.added_tokens_decoder[4].lstrip  # "<mask>" takes the space before it, as in RoBERTa


def test_roberta_style_frames_singles_and_pairs(roberta):
    single = roberta("The game")
    assert roberta.convert_ids_to_tokens(single["input_ids"])[0] == "<s>"
    assert roberta.convert_ids_to_tokens(single["input_ids"])[-1] == "</s>"
    pair = roberta("The game", "was won")
    a = roberta("The game", add_special_tokens=False)["input_ids"]
    b = roberta("was won", add_special_tokens=False)["input_ids"]
    assert pair["input_ids"] == [0, *a, 2, 2, *b, 2]
    assert "token_type_ids" not in pair


def test_roberta_mask_absorbs_the_space_before_it(roberta):
    ids = roberta("The <mask> was won", add_special_tokens=False)["input_ids"]
    tokens = roberta.convert_ids_to_tokens(ids)
    assert "<mask>" in tokens and tokens[tokens.index("<mask>") + 1].startswith("Ġ")
    assert roberta.decode(ids) == "The<mask> was won"


def test_padding_is_on_the_right_with_the_pad_id(roberta):
    batch = roberta(["a", "a longer sentence here"], padding=True)
    short = batch["input_ids"][0]
    assert short[-1] == roberta.pad_token_id and short[0] == roberta.bos_token_id
    assert batch["attention_mask"][0][-1] == 0


def test_truncation_uses_model_max_length(roberta):
    assert len(roberta("word " * 2000, truncation=True)["input_ids"]) == 512


def test_bert_style_pairs_have_segments(bert):
    assert bert.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert bert.bos_token is None and bert.mask_token == "[MASK]" and bert.mask_token_id == 4
    a = bert("The game", add_special_tokens=False)["input_ids"]
    b = bert("was won", add_special_tokens=False)["input_ids"]
    pair = bert("The game", "was won")
    assert pair["input_ids"] == [2, *a, 3, *b, 3]
    assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert not bert.added_tokens_decoder[4].lstrip


@pytest.mark.parametrize("text", NASTY)
def test_byte_level_round_trips_exactly(roberta, bert, text):
    for tok in (roberta, bert):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.unk_token_id not in ids
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_byte_level_round_trips_random_unicode(roberta):
    rng = random.Random(0)
    planes = [(0x0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    texts = []
    for _ in range(300):
        chars = []
        for _ in range(rng.randint(1, 40)):
            low, high = rng.choice(planes)
            chars.append(chr(rng.randint(low, high)))
        texts.append("".join(chars))
    encoded = roberta(texts, add_special_tokens=False)["input_ids"]
    assert [roberta.decode(ids) for ids in encoded] == texts


def test_offsets_leave_out_the_space_before_a_word(roberta):
    # whole-word masking in the pretrain stage reads word starts from offsets
    text = "The game was won"
    enc = roberta(text, return_offsets_mapping=True, add_special_tokens=False)
    starts = {text[s:e] for s, e in enc["offset_mapping"]}
    assert all(not piece.startswith(" ") for piece in starts)


def test_stats_json_and_saved_config(tmp_path):
    directory, report, warnings = train(tmp_path)
    stats = json.loads((directory / "stats.json").read_text())
    assert stats == report and warnings == []
    lines = sum(1 for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip())
    assert stats["corpus"]["lines"] == lines
    assert stats["corpus"]["disk_bytes"] == SAMPLE.stat().st_size
    assert stats["corpus"]["bad_lines"] == 0
    assert 0 < stats["training_seconds"] <= stats["total_seconds"]
    assert stats["vocab_size"] == 600 and stats["algorithm"] == "byte-level"
    saved = load_config(TokenizerConfig, directory / "config.yaml")
    assert saved == make_config(tmp_path)
    assert yaml.safe_load((directory / "config.yaml").read_text())["bpe"]["vocab_size"] == 600


def test_classic_bpe_marks_word_ends_and_uses_unk(tmp_path):
    directory, report, _ = train(
        tmp_path, bpe={"algorithm": "classic", "vocab_size": 800, "limit_alphabet": 60}, special_tokens="bert"
    )
    tok = load(directory)
    assert report["vocab_size"] <= 800
    tokens = tok.tokenize("the game was won")
    assert sum(t.endswith("</w>") for t in tokens) == 4  # the last piece of each word, and only it
    assert "".join(tokens).replace("</w>", " ").split() == ["the", "game", "was", "won"]
    ids = tok("the game, was won.", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "the game , was won ."  # classic BPE keeps words, not spacing
    unseen = tok("日本", add_special_tokens=False)["input_ids"]
    assert unseen and set(unseen) == {tok.unk_token_id}
    pair = tok("a", "b")["input_ids"]
    assert pair[0] == tok.cls_token_id and pair.count(tok.sep_token_id) == 2


def test_classic_vocab_below_alphabet_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(UserError, match=r"bpe.vocab_size 100 is smaller than the corpus alphabet.*characters.*'</w>'"):
        train(tmp_path, bpe={"algorithm": "classic", "vocab_size": 100})
    assert list(tmp_path.iterdir()) == []


def test_normalisation_lowercase_and_nfkc(tmp_path):
    directory, _, warnings = train(tmp_path, normalize={"unicode": "nfkc", "lowercase": True})
    tok = load(directory)
    ids = tok("ＦＵＬＬ Width ﬁ", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "full width fi"
    assert any("normalisation is on" in w for w in warnings)


def test_min_frequency_limits_the_vocabulary_with_a_warning(tmp_path):
    _, report, warnings = train(tmp_path, bpe={"vocab_size": 50000, "min_frequency": 50})
    assert 261 < report["vocab_size"] < 50000
    assert any("fewer than the 50000 asked for" in w and "min_frequency=50" in w for w in warnings)


def test_sample_trains_on_a_fraction_of_the_lines(tmp_path):
    _, full, _ = train(tmp_path, "full")
    _, half, _ = train(tmp_path, "half", corpus={"sample": 0.5, "seed": 3})
    assert 0.4 < half["corpus"]["lines"] / full["corpus"]["lines"] < 0.6
    assert half["corpus"]["sample"] == 0.5


def test_sample_that_keeps_nothing_is_an_error(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("one line only\n")
    with pytest.raises(UserError, match="corpus.sample=1e-06 kept none of the lines"):
        train(tmp_path, corpus={"files": [str(tiny)], "sample": 1e-6})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]


def test_masked_lm_collator_accepts_the_tokenizer(roberta):
    from transformers import DataCollatorForLanguageModeling

    # its own seeded generator: what the global one holds depends on the tests that ran before this one
    collator = DataCollatorForLanguageModeling(roberta, mlm_probability=0.5, return_tensors="pt", seed=0)
    batch = collator([roberta(t) for t in ["The game was won", "a b"]])
    assert batch["input_ids"].shape == batch["labels"].shape
    assert (batch["input_ids"] == roberta.mask_token_id).any()
