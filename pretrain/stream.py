"""Streaming a corpus without preparing it: read, tokenise and pack on the fly, through a seeded shuffle
buffer, with a state that resumes exactly and at once.

The state is everything between the files and the next block: the reader's position (a byte offset into
the current part of the corpus), the packer's leftover tokens, the blocks of the last text batch not yet
shuffled in, the shuffle buffer's blocks and its RNG state. Resume seeks to the offset; nothing consumed is
read or tokenised again, and the blocks that follow are the ones an uninterrupted run would have drawn.
(`datasets`' IterableDataset.state_dict does not serve: its shuffle buffer's content is not saved, and on
loading, datasets 5.2 warns "Loading a state dict of a shuffle buffer of a dataset without the buffer
content" and refills it, so a resumed run draws other blocks; and its position is a count to re-read.) A 10,000-block buffer of 128 tokens is ~10 MB in a checkpoint.

What cannot seek: a .gz file has no byte offsets to jump to, and CSV or parquet rows are counted rather
than located; there the position is a count of texts, and resume reads (decompresses) that many texts
again without tokenising them.

Ranks read disjoint parts: each splittable file is cut into one byte range per rank, other files are dealt
out whole, round robin. The validation blocks are the first ones of the corpus; training starts after them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alum.corpus import iter_texts, read_range, splittable
from alum.errors import UserError
from alum.pretrain.packing import Packer, rows

_TEXTS_PER_BATCH = 256


@dataclass(frozen=True)
class Part:
    """bytes [start, end) of a splittable file; or a whole other file with its first `start` texts skipped
    (end = -1)."""

    file: str
    start: int
    end: int

    @property
    def seekable(self) -> bool:
        return self.end >= 0


def whole_corpus(files: list[Path]) -> list[Part]:
    return [Part(str(f), 0, Path(f).stat().st_size) if splittable(Path(f)) else Part(str(f), 0, -1) for f in files]


def after(parts: list[Part], index: int, position: int) -> list[Part]:
    """The corpus from `position` (a byte offset, or texts read) of part `index` on."""
    p = parts[index]
    return [Part(p.file, position, p.end)] + parts[index + 1 :]


def for_rank(parts: list[Part], rank: int, world: int) -> list[Part]:
    mine, dealt = [], 0
    for p in parts:
        if p.seekable:
            cuts = [p.start + (p.end - p.start) * r // world for r in range(world + 1)]
            mine.append(Part(p.file, cuts[rank], cuts[rank + 1]))
        else:
            if dealt % world == rank:
                mine.append(p)
            dealt += 1
    return mine


def texts(part: Part, position: int, column: str, strict: bool) -> Iterator[tuple[int, str]]:
    """(position after it, text) from `position` of `part` on."""
    if part.seekable:
        yield from read_range(Path(part.file), position, part.end, text_column=column, strict=strict)
    else:
        for count, text in enumerate(iter_texts([Path(part.file)], text_column=column, strict=strict), start=1):
            if count > position:  # re-read, not tokenised: what cannot seek
                yield count, text


def head(parts: list[Part], packer: Packer, column: str, strict: bool, blocks: int) -> tuple[list[np.ndarray], int, int]:
    """The first `blocks` blocks of the corpus, and the (part, position) where reading them stopped."""
    got: list[np.ndarray] = []
    for index, part in enumerate(parts):
        batch, position = [], part.start
        for position, text in texts(part, part.start, column, strict):
            batch.append(text)
            if len(batch) == 64:
                got += packer.add(batch)
                batch = []
                if len(got) >= blocks:
                    return got[:blocks], index, position
        got += packer.add(batch)
        if len(got) >= blocks:
            return got[:blocks], index, position
    return got, len(parts), 0


class BlockStream:
    """Blocks of `parts`, epoch after epoch, through a shuffle buffer of `buffer` blocks."""

    def __init__(self, parts: list[Part], tokenizer, block_size: int, whole_word: bool, column: str, strict: bool,
                 buffer: int, seed: int):
        if not parts:
            raise UserError("data.files: this process has no part of the corpus to read (fewer unsplittable "
                            "files, .gz/CSV/parquet, than processes): split the corpus into more files")
        self.parts, self.column, self.strict, self.size = parts, column, strict, max(1, buffer)
        self.packer = Packer(tokenizer, block_size, whole_word)
        self.seed = seed
        self.epoch, self.part, self.position = 0, 0, parts[0].start
        self.pending: deque[np.ndarray] = deque()
        self.buffer: list[np.ndarray] = []
        self.draining = False  # the parts are read to the end: the buffer empties in its shuffled order
        self.produced = 0  # blocks this epoch, to tell an empty corpus from the end of one
        self.rng = random.Random(seed)
        self._reader: Iterator[tuple[int, str]] | None = None

    def take(self, n: int) -> list[dict[str, list]]:
        """The first `n` blocks of this stream's parts, unshuffled, as rows; the stream itself is untouched."""
        packer = Packer(self.packer.tokenizer, self.packer.block_size, self.packer.whole_word)
        return [rows(b) for b in head(self.parts, packer, self.column, self.strict, n)[0]]

    # ---- the state a checkpoint keeps ----
    def state(self) -> dict[str, Any]:
        def stack(blocks):
            return torch.from_numpy(np.stack(blocks)) if blocks else None

        return {"epoch": self.epoch, "part": self.part, "position": self.position,
                "leftover": torch.from_numpy(self.packer.leftover.copy()), "pending": stack(list(self.pending)),
                "buffer": stack(self.buffer), "draining": self.draining, "produced": self.produced,
                "rng": self.rng.getstate()}

    def load(self, state: dict[str, Any]) -> None:
        def unstack(t):
            return [] if t is None else list(t.numpy())

        self.epoch, self.part, self.position = state["epoch"], state["part"], state["position"]
        self.packer.leftover = state["leftover"].numpy().copy()
        self.pending, self.buffer = deque(unstack(state["pending"])), unstack(state["buffer"])
        self.draining, self.produced = state["draining"], state["produced"]
        self.rng.setstate(state["rng"])
        self._reader = None  # reopened at the saved position: a seek, or (gz, CSV, parquet) a re-read

    # ---- reading ----
    def _read_batch(self) -> bool:
        """Tokenise the next batch of texts into `pending`; False at the end of the parts."""
        while self.part < len(self.parts):
            if self._reader is None:
                self._reader = texts(self.parts[self.part], self.position, self.column, self.strict)
            batch = []
            for self.position, text in self._reader:
                batch.append(text)
                if len(batch) == _TEXTS_PER_BATCH:
                    break
            if batch:
                self.pending.extend(self.packer.add(batch))
                return True
            self.part += 1
            self._reader = None
            self.position = self.parts[self.part].start if self.part < len(self.parts) else 0
        return False

    def next_block(self) -> np.ndarray:
        while True:
            if self.pending:
                block = self.pending.popleft()
                if len(self.buffer) < self.size:
                    self.buffer.append(block)
                    continue
                j = self.rng.randrange(self.size)
                block, self.buffer[j] = self.buffer[j], block
                self.produced += 1
                return block
            if self.draining:
                if self.buffer:
                    self.produced += 1
                    return self.buffer.pop()
                self._next_epoch()
                continue
            if not self._read_batch():
                self.draining = True
                self.rng.shuffle(self.buffer)

    def _next_epoch(self) -> None:
        if self.produced == 0:
            raise UserError("the corpus gives no block of data.block_size tokens to this process: add text")
        self.epoch += 1
        self.part, self.position, self.produced, self.draining = 0, self.parts[0].start, 0, False
        self.packer.leftover = self.packer.leftover[:, :0]
        self._reader = None
