"""Sharing dropout masks between the passes of one step, without touching any model's code.

Dropout draws from the global random streams (the CPU generator, and the CUDA device's). Capturing them
before the first pass and restoring them around each later pass makes every pass of the same shapes, in
the same order of random calls, draw the same masks; after a replayed pass the streams continue from
where they were, so whatever else the step draws (delta's random start) is unaffected.

Under ALUM, clean and perturbed passes then differ only by delta: in train mode with independent masks the
ascent gradient at a tiny delta is mostly the two masks' disagreement, not the model's sensitivity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RandomState:
    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device


def capture(device: torch.device) -> RandomState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return RandomState(torch.get_rng_state(), cuda, device)


def _restore(state: RandomState) -> None:
    torch.set_rng_state(state.cpu)
    if state.cuda is not None:
        torch.cuda.set_rng_state(state.cuda, state.device)


@contextlib.contextmanager
def replaying(state: RandomState | None) -> Iterator[None]:
    """Run the block from `state` (the random draws of an earlier pass), then continue the streams from
    where they were before it. With `state=None` nothing is replayed: the block draws fresh masks."""
    if state is None:
        yield
        return
    outer = capture(state.device)
    _restore(state)
    try:
        yield
    finally:
        _restore(outer)
