"""Intra-op threads for a block: a model trained to be compared with another must be trained with the same
count (a sum over two threads is rounded differently than over one)."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(count: int = 1):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
