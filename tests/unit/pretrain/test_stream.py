"""The resumable stream (alum.pretrain.stream): a state taken anywhere, across the buffer's fill, its drain
and the epoch boundary, continues with exactly the blocks an uninterrupted stream gives; ranks read
disjoint parts; resume seeks instead of reading again."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from alum.errors import UserError
from alum.pretrain import stream
from alum.pretrain.packing import Packer, backend
from support.paths import SAMPLE


@pytest.fixture(scope="module")
def fast(tokenizer_dir):
    return backend(AutoTokenizer.from_pretrained(tokenizer_dir))


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Texts are read 8 at a time, so a state falls between reads of the file, not after all of it."""
    monkeypatch.setattr(stream, "_TEXTS_PER_BATCH", 8)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:120]), encoding="utf-8")
    return path


def make(parts, fast, buffer=16, seed=3):
    return stream.BlockStream(parts, fast, 16, False, "text", False, buffer, seed)


def in_order(corpus, fast):
    """The corpus's blocks unshuffled: every line packed in one go."""
    return Packer(fast, 16, False).add([line for line in corpus.read_text().splitlines() if line.strip()])


def draw(s, n):
    return [s.next_block().copy() for _ in range(n)]


def through_checkpoint(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_a_state_taken_anywhere_resumes_to_the_same_blocks(corpus, fast):
    per_epoch = len(in_order(corpus, fast))
    assert per_epoch > 40
    reference = draw(make(stream.whole_corpus([corpus]), fast), 2 * per_epoch + 10)  # across two epoch ends
    for stop in (1, 15, 17, per_epoch - 3, per_epoch, per_epoch + 5, 2 * per_epoch + 1):
        first = make(stream.whole_corpus([corpus]), fast)
        head = draw(first, stop)
        resumed = make(stream.whole_corpus([corpus]), fast, seed=99)  # the seed comes back with the state
        resumed.load(through_checkpoint(first.state()))
        tail = draw(resumed, len(reference) - stop)
        assert all(np.array_equal(a, b) for a, b in zip(head + tail, reference)), f"stopped after {stop}"


def test_the_buffer_shuffles_and_epochs_differ(corpus, fast):
    s = make(stream.whole_corpus([corpus]), fast, buffer=32)
    ordered = in_order(corpus, fast)
    first = draw(s, len(ordered))
    second = draw(s, len(ordered))
    key = lambda blocks: sorted(b.tobytes() for b in blocks)  # noqa: E731
    assert key(first) == key(ordered) == key(second)  # each block once per epoch, none lost in the buffer
    assert [b.tobytes() for b in first] != [b.tobytes() for b in ordered]
    assert [b.tobytes() for b in first] != [b.tobytes() for b in second]


def test_resume_seeks_to_the_saved_offset(corpus, fast, monkeypatch):
    first = make(stream.whole_corpus([corpus]), fast)
    draw(first, 30)
    state = first.state()
    assert state["position"] > 0
    opened = []
    original = stream.texts
    monkeypatch.setattr(stream, "texts", lambda part, position, *a: (opened.append(position), original(part, position, *a))[1])
    resumed = make(stream.whole_corpus([corpus]), fast)
    resumed.load(state)
    draw(resumed, 300)  # past what the buffer and the pending blocks held
    assert opened and opened[0] == state["position"]  # the reader starts where the checkpoint stopped, not at byte 0


def test_gz_resumes_by_re_reading_and_still_matches(tmp_path, corpus, fast):
    packed = tmp_path / "text.txt.gz"
    packed.write_bytes(gzip.compress(corpus.read_bytes()))
    reference = draw(make(stream.whole_corpus([packed]), fast), 60)
    first = make(stream.whole_corpus([packed]), fast)
    head = draw(first, 25)
    resumed = make(stream.whole_corpus([packed]), fast)
    resumed.load(through_checkpoint(first.state()))
    assert all(np.array_equal(a, b) for a, b in zip(head + draw(resumed, 35), reference))


def test_ranks_read_disjoint_parts_that_cover_the_corpus(tmp_path, corpus, fast):
    other = tmp_path / "b.txt.gz"
    other.write_bytes(gzip.compress(b"one more line\nand another\n"))
    parts = stream.whole_corpus([corpus, other])
    ranks = [stream.for_rank(parts, r, 2) for r in range(2)]
    seekable = [p for r in ranks for p in r if p.seekable]
    assert sorted((p.start, p.end) for p in seekable) == [(0, seekable[0].end), (seekable[0].end, corpus.stat().st_size)]
    texts = [t for r in ranks for p in r for _, t in stream.texts(p, p.start, "text", False)]
    whole = [t for p in parts for _, t in stream.texts(p, p.start, "text", False)]
    assert sorted(texts) == sorted(whole) and len(texts) == len(whole)
    assert [p.file for p in ranks[0] if not p.seekable] == [str(other)] and all(p.seekable for p in ranks[1])


def test_a_rank_without_a_part_is_told_to_split_the_corpus(tmp_path, fast):
    only = tmp_path / "a.txt.gz"
    only.write_bytes(gzip.compress(b"text\n"))
    with pytest.raises(UserError, match="split the corpus into more files"):
        make(stream.for_rank(stream.whole_corpus([only]), 1, 2), fast)


def test_validation_head_and_training_do_not_overlap(corpus, fast):
    parts = stream.whole_corpus([corpus])
    got, index, position = stream.head(parts, Packer(fast, 16, False), "text", False, 10)
    assert len(got) == 10 and index == 0 and 0 < position < corpus.stat().st_size
    rest = stream.after(parts, index, position)
    read_after = [t for p in rest for _, t in stream.texts(p, p.start, "text", False)]
    lines = [line for line in corpus.read_text().splitlines() if line.strip()]
    assert read_after == lines[len(lines) - len(read_after):] and len(read_after) < len(lines)
