"""Dropout replay (alum/adversarial/dropout.py): a captured random state replays the same masks, and the
streams go on afterwards as if nothing had been replayed."""

from __future__ import annotations

import torch

from alum.adversarial import dropout


def test_replaying_restores_the_streams_after_the_block():
    cpu = torch.device("cpu")
    torch.manual_seed(5)
    state = dropout.capture(cpu)
    first = torch.rand(4)
    expected_next = torch.rand(4)
    torch.manual_seed(5)
    torch.rand(4)
    with dropout.replaying(state):
        assert torch.equal(torch.rand(4), first)
    assert torch.equal(torch.rand(4), expected_next)
