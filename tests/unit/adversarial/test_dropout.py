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


def test_replaying_continues_from_before_the_block_when_something_was_drawn_in_between():
    """A step's order: the clean pass draws its masks from the captured state, delta's random start is drawn,
    then the perturbed pass replays the clean pass's masks. After the replay the streams must continue from
    after the random start: not from where the replay ended (just after the clean pass's masks, so the next
    masks would reuse the random start's numbers), nor from the captured state. In the test above nothing is
    drawn between the captured pass and the replay, so those three places coincide there."""
    cpu = torch.device("cpu")
    torch.manual_seed(5)
    state = dropout.capture(cpu)
    masks = torch.rand(6)  # the captured pass
    start = torch.randn(3)  # drawn between it and the replay
    unreplayed_next = torch.rand(4)  # the next draw of a run that replays nothing

    torch.manual_seed(5)
    assert torch.equal(torch.rand(6), masks)
    assert torch.equal(torch.randn(3), start)
    with dropout.replaying(state):
        assert torch.equal(torch.rand(6), masks)  # inside: the captured pass's draws, not fresh ones
    assert torch.equal(torch.rand(4), unreplayed_next)  # after: as if nothing had been replayed

    # the places a wrong restore would leave the streams give other numbers here
    torch.manual_seed(5)
    torch.rand(6)
    where_the_replay_ends = torch.rand(4)
    torch.manual_seed(5)
    at_the_captured_state = torch.rand(4)
    assert not torch.equal(where_the_replay_ends, unreplayed_next)
    assert not torch.equal(at_the_captured_state, unreplayed_next)


def test_replaying_nothing_draws_fresh_numbers_and_moves_the_streams_on():
    """state=None (share_dropout off): the block draws from the streams as they are, and they move on."""
    torch.manual_seed(5)
    first, second = torch.rand(4), torch.rand(4)
    torch.manual_seed(5)
    with dropout.replaying(None):
        assert torch.equal(torch.rand(4), first)
    assert torch.equal(torch.rand(4), second)
