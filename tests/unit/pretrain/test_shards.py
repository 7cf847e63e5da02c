"""A prepared corpus's manifest against the run's config (alum.pretrain.shards.check): every mismatch that
would change what training sees is refused in one line that names the key."""

from __future__ import annotations

import os
import shutil

import pytest

from alum.errors import UserError
from alum.pretrain import prepare, shards
from support.paths import SAMPLE


@pytest.fixture(scope="module")
def made(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("shards")
    corpus = root / "text.txt"
    corpus.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:100]), encoding="utf-8")
    directory = root / "prepared"
    prepare.prepare([corpus], str(tokenizer_dir), directory, block_size=16, num_proc=1, progress=False)
    return directory, corpus


def check(made, tokenizer, **overrides):
    directory, corpus = made
    kwargs = dict(tokenizer=str(tokenizer), block_size=16, whole_word=False, files=[corpus]) | overrides
    shards.check(shards.read_manifest(directory), directory, **kwargs)


def test_a_matching_config_passes(made, tokenizer_dir):
    check(made, tokenizer_dir)
    check(made, tokenizer_dir, files=None)  # --data-dir alone: the sources are not compared


def test_another_block_size_is_refused(made, tokenizer_dir):
    with pytest.raises(UserError, match=r"^data\.block_size: .*block_size 16, this run asks 32"):
        check(made, tokenizer_dir, block_size=32)


def test_another_tokenizer_is_refused(made, tokenizer_dir, tmp_path):
    other = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, other)
    check(made, other)  # the same files elsewhere are the same tokenizer
    vocab = other / "tokenizer.json"
    vocab.write_text(vocab.read_text().replace('"<mask>"', '"<MASK>"'))
    with pytest.raises(UserError, match=r"^data\.tokenizer: .*another tokenizer"):
        check(made, other)


def test_whole_word_needs_offsets(made, tokenizer_dir):
    with pytest.raises(UserError, match=r"^masking\.whole_word: .*--whole-word"):
        check(made, tokenizer_dir, whole_word=True)


def test_an_edited_or_different_source_is_refused(made, tokenizer_dir, tmp_path):
    directory, corpus = made
    with pytest.raises(UserError, match=r"^data\.files: 2 file\(s\) here, 1 when it was prepared"):
        check(made, tokenizer_dir, files=[corpus, corpus])
    stat = corpus.stat()
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        with pytest.raises(UserError, match=r"^data\.files: .*text\.txt changed since"):
            check(made, tokenizer_dir)
    finally:
        os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_directory_without_manifest_is_refused(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(UserError, match=r"^data\.prepared: .*manifest\.json missing"):
        shards.load(tmp_path)
    (tmp_path / shards.MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(UserError, match=r"^data\.prepared: .*not a corpus prepared by `alum prepare`"):
        shards.read_manifest(tmp_path)
