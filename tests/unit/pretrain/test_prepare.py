"""Preparing a corpus (alum.pretrain.prepare): the parts tile the files, the shards hold exactly what the
tokenizer makes of the text, packed, and are the same for one process and two; progress adds up to the
bytes on disk; an interrupted build leaves nothing that looks finished."""

from __future__ import annotations

import dataclasses
import gzip
import json

import pytest
from transformers import AutoTokenizer

from alum.corpus import read_range
from alum.errors import UserError
from alum.pretrain import prepare, shards
from alum.pretrain.config import PrepareConfig
from support.paths import SAMPLE


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:300]), encoding="utf-8")
    return path


def lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("part_bytes", [1, 7, 1000, 10**9])
def test_parts_tile_each_file_and_read_every_line_once(corpus, part_bytes):
    parts = prepare.plan([corpus], part_bytes=min(part_bytes, corpus.stat().st_size))
    assert parts[0].start == 0 and parts[-1].end == corpus.stat().st_size
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    heard = []
    read = [t for p in parts for _, t in read_range(corpus, p.start, p.end, progress=heard.append)]
    assert read == lines(corpus)
    assert sum(heard) == corpus.stat().st_size  # the progress bar ends at the size on disk


def test_shards_hold_the_tokenised_text_packed_in_order(corpus, tokenizer_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "_TEXTS_PER_BATCH", 7)  # tokens left over from one batch start the next block
    manifest = prepare.prepare([corpus], str(tokenizer_dir), tmp_path / "p", block_size=16, num_proc=1,
                               part_bytes=corpus.stat().st_size + 1, progress=False)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    encoded = tok(lines(corpus), return_special_tokens_mask=True)
    ids = [t for row in encoded["input_ids"] for t in row]
    special = [t for row in encoded["special_tokens_mask"] for t in row]
    blocks = shards.load(tmp_path / "p")
    assert manifest["blocks"] == len(blocks) == len(ids) // 16
    assert [t for row in blocks["input_ids"] for t in row] == ids[: len(blocks) * 16]
    assert [t for row in blocks["special_tokens_mask"] for t in row] == special[: len(blocks) * 16]


def test_one_and_two_processes_make_the_same_shards(corpus, tokenizer_dir, tmp_path):
    made = {}
    for n in (1, 2):
        manifest = prepare.prepare([corpus], str(tokenizer_dir), tmp_path / f"p{n}", block_size=16, num_proc=n,
                                   part_bytes=4000, progress=False)
        assert manifest["processes"] == n and len(manifest["shards"]) > 2
        made[n] = shards.load(tmp_path / f"p{n}")["input_ids"]
    assert made[1] == made[2]


def test_whole_word_shards_keep_offsets_and_gz_is_one_part(corpus, tokenizer_dir, tmp_path):
    packed = tmp_path / "text.txt.gz"
    packed.write_bytes(gzip.compress(corpus.read_bytes()))
    assert prepare.plan([packed], part_bytes=10)[0].start == -1  # a .gz cannot be cut
    prepare.prepare([packed], str(tokenizer_dir), tmp_path / "p", block_size=16, whole_word=True, num_proc=1,
                    progress=False)
    row = shards.load(tmp_path / "p")[0]
    assert len(row["offset_start"]) == len(row["offset_end"]) == 16
    assert all(a <= b for a, b in zip(row["offset_start"], row["offset_end"]))


def test_manifest_records_tokenizer_block_size_and_sources(corpus, tokenizer_dir, tmp_path):
    prepare.prepare([corpus], str(tokenizer_dir), tmp_path / "p", block_size=16, num_proc=1, progress=False)
    manifest = json.loads((tmp_path / "p" / shards.MANIFEST).read_text())
    assert manifest["tokenizer"] == shards.tokenizer_hash(tokenizer_dir)
    assert manifest["block_size"] == 16 and manifest["texts"] == len(lines(corpus))
    assert manifest["sources"] == [{"path": str(corpus.resolve()), "size": corpus.stat().st_size,
                                    "mtime_ns": corpus.stat().st_mtime_ns}]


def test_an_interrupted_build_leaves_no_finished_looking_directory(corpus, tokenizer_dir, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "_build_part", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare([corpus], str(tokenizer_dir), tmp_path / "p", block_size=16, num_proc=1, progress=False)
    assert not (tmp_path / "p").exists() and shards.read_manifest(tmp_path / "p") is None


def test_the_stage_run_checks_builds_and_returns_the_manifest(corpus, tokenizer_dir, tmp_path):
    # `alum prepare` from Python: the manifest it returns is the one written, and its line names the output
    cfg = PrepareConfig(tokenizer=str(tokenizer_dir), files=[str(corpus)], output=str(tmp_path / "p"), block_size=16,
                        num_proc=1, progress=False)
    manifest = prepare.run(cfg)
    assert manifest == json.loads((tmp_path / "p" / shards.MANIFEST).read_text())
    assert manifest["blocks"] == len(shards.load(tmp_path / "p")) > 0
    assert prepare.describe(manifest, cfg.output).startswith(f"prepared {cfg.output}: {manifest['blocks']:,} blocks")
    with pytest.raises(UserError, match="is not empty: pass --overwrite"):  # nothing replaced without asking
        prepare.run(cfg)
    again = prepare.run(dataclasses.replace(cfg, overwrite=True))
    assert again["shards"] == manifest["shards"]
    with pytest.raises(UserError, match="--block-size must be at least 8"):
        prepare.run(dataclasses.replace(cfg, block_size=4, output=str(tmp_path / "q")))
    assert not (tmp_path / "q").exists()
