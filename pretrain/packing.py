"""Texts -> tokens -> fixed-length blocks (run_mlm's packing), shared by preparation and streaming.

The `tokenizers` backend of the HF tokenizer encodes a batch of texts at once (with its special tokens, as
`tokenizer(texts)` would); the token streams are joined and cut into blocks of `block_size`. Tokens that do
not fill a block yet wait in `leftover` for the next batch, so the only tokens ever dropped are the last
partial block of a part of the corpus. A block is one int32 array of shape (rows, block_size): input ids,
the special-tokens mask and, for whole-word masking, the start and end offsets of each token.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

COLUMNS = ("input_ids", "special_tokens_mask")
OFFSETS = ("offset_start", "offset_end")  # stored as two rows; rows() gives the collator its offset_mapping


def backend(tokenizer) -> Any:
    """The fast tokenizer underneath a HF tokenizer (or a `tokenizers.Tokenizer` as is), set to encode texts
    whole: no truncation, no padding, whatever the saved files ask for."""
    from tokenizers import Tokenizer

    inner = tokenizer if isinstance(tokenizer, Tokenizer) else tokenizer.backend_tokenizer
    inner = Tokenizer.from_str(inner.to_str())  # a copy: the caller's tokenizer keeps its settings
    inner.no_truncation()
    inner.no_padding()
    return inner


class Packer:
    """Also counts the text's tokens (special ones aside) and, given the unknown token's id, how many of them
    are unknown: a tokenizer that does not fit the corpus shows there."""

    def __init__(self, tokenizer, block_size: int, whole_word: bool, unk_id: int | None = None):
        self.tokenizer, self.block_size, self.whole_word, self.unk_id = tokenizer, block_size, whole_word, unk_id
        self.leftover = np.zeros((4 if whole_word else 2, 0), dtype=np.int32)
        self.tokens = self.unknown = 0

    def add(self, texts: list[str]) -> list[np.ndarray]:
        """The blocks completed by these texts, in order."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array(list(chain.from_iterable(e.ids for e in encodings)), dtype=np.int32)
        special = np.array(list(chain.from_iterable(e.special_tokens_mask for e in encodings)), dtype=np.int32)
        self.tokens += int((special == 0).sum())
        if self.unk_id is not None:
            self.unknown += int(((ids == self.unk_id) & (special == 0)).sum())
        rows = [ids, special]
        if self.whole_word:
            offsets = np.array(list(chain.from_iterable(e.offsets for e in encodings)), dtype=np.int32).reshape(-1, 2)
            rows += [offsets[:, 0], offsets[:, 1]]
        joined = np.concatenate([self.leftover, np.stack(rows)], axis=1)
        usable = joined.shape[1] // self.block_size * self.block_size
        self.leftover = joined[:, usable:].copy()
        return [joined[:, i : i + self.block_size] for i in range(0, usable, self.block_size)]


def rows(block: np.ndarray) -> dict[str, list]:
    """A block as the MLM collator takes it."""
    row = {"input_ids": block[0].tolist(), "special_tokens_mask": block[1].tolist()}
    if block.shape[0] == 4:
        row["offset_mapping"] = np.stack([block[2], block[3]], axis=1).tolist()
    return row
