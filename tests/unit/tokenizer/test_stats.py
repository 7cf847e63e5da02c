"""`alum.tokenizer.stats`: the figures on tokenizers that are ours and that are not, and loading any directory."""

from __future__ import annotations

import json

import pytest

from alum.errors import UserError
from alum.tokenizer.stats import corpus_stats, format_table, load_tokenizer, measure


def word_level_dir(tmp_path, with_config: bool = True):
    """A tokenizer that is not ours: word level, four known words, everything else unknown."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "the": 2, "cat": 3, "sat": 4, "on": 5}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    directory = tmp_path / "wordlevel"
    directory.mkdir()
    if with_config:
        PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(
            str(directory)
        )
    else:
        backend.save(str(directory / "tokenizer.json"))
    return directory


def test_unknown_rate_bytes_and_words_on_a_foreign_tokenizer(tmp_path):
    tok = load_tokenizer(word_level_dir(tmp_path))
    result = measure(tok, ["the cat sat on the mat", "a dog"])
    assert result["texts"] == 2 and result["words"] == 8 and result["tokens"] == 8
    assert result["unk_tokens"] == 3 and result["unk_rate"] == pytest.approx(3 / 8)
    assert result["bytes_per_token"] == pytest.approx(len("the cat sat on the mat" "a dog") / 8)
    assert result["tokens_per_word"] == 1.0
    assert result["vocab_size"] == 6


@pytest.mark.parametrize("path", ["wordlevel", "wordlevel/tokenizer.json"])
def test_a_bare_tokenizer_json_loads_and_its_unknown_token_is_found(tmp_path, path):
    word_level_dir(tmp_path, with_config=False)
    tok = load_tokenizer(tmp_path / path)
    assert tok.unk_token_id is None  # transformers does not know it without a config ...
    assert measure(tok, ["the dog"])["unk_tokens"] == 1  # ... the model itself does


def test_batches_give_the_same_counts_as_one_by_one(tmp_path, monkeypatch):
    import alum.tokenizer.stats as stats

    tok = load_tokenizer(word_level_dir(tmp_path))
    texts = [f"the cat {'sat ' * (i % 5)}on x{i}" for i in range(25)]
    whole = measure(tok, texts)
    monkeypatch.setattr(stats, "BATCH", 7)
    assert measure(tok, texts) == whole


def test_truncation_and_padding_in_tokenizer_json_do_not_cut_the_counts(tmp_path):
    tok = load_tokenizer(word_level_dir(tmp_path))
    tok.backend_tokenizer.enable_truncation(max_length=3)
    tok.backend_tokenizer.enable_padding(length=10, pad_id=1, pad_token="[PAD]")
    tok.save_pretrained(str(tmp_path / "truncating"))
    result = measure(load_tokenizer(tmp_path / "truncating"), ["the cat sat on the mat", "on"])
    assert result["tokens"] == 7


def test_missing_or_unreadable_tokenizer_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="tokenizer '.*nowhere' not found"):
        load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="'.*empty' is not a tokenizer directory transformers can load"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(UserError, match="cannot load the tokenizer"):
        load_tokenizer(tmp_path / "broken")


def test_table_lists_every_figure(tmp_path):
    tok = load_tokenizer(word_level_dir(tmp_path))
    table = format_table("wordlevel", measure(tok, ["the cat", "zzz"]))
    assert "unknown tokens   1 (33.333%)" in table
    for label in ("vocab size", "texts", "words", "tokens", "bytes per token", "tokens per word"):
        assert label in table


def test_corpus_stats_reads_the_files_and_counts_what_it_skipped(tmp_path):
    # what `alum tokenizer stats` prints, from Python: the JSON object and the table
    directory = word_level_dir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"the cat sat on the mat\n\xff not utf-8\na dog\n")
    warned: list[str] = []
    stats = corpus_stats(directory, [str(corpus)], progress=False, warn=warned.append)
    assert stats.as_json() == {"tokenizer": str(directory), **measure(load_tokenizer(directory),
                                                                     ["the cat sat on the mat", "a dog"]),
                               "bad_lines": 1}
    kind = type(load_tokenizer(directory)).__name__  # whichever class transformers loads it as
    assert stats.table() == format_table(f"{directory} ({kind})", stats.figures)
    assert warned == [f"skipped 1 line(s) with undecodable bytes (first at {corpus}:2)"]
    with pytest.raises(UserError, match=r"--sample must be in \(0, 1\], got 0"):
        corpus_stats(directory, [str(corpus)], sample=0, warn=warned.append)
