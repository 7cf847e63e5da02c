"""Ctrl-C reaches a training run at once, and errors from reading the corpus come back to the caller."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest

from alum.errors import UserError
from alum.tokenizer.interruptible import train_interruptibly


def trainer_pair():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer, trainers.BpeTrainer(vocab_size=300, show_progress=False)


@pytest.fixture
def default_ctrl_c():
    """Python's own Ctrl-C handling, whatever a library used by an earlier test in this process installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_a_run_that_is_reading(default_ctrl_c):
    read = itertools.count()

    def endless():  # about 10 s of lines: long enough to be interrupted, short enough never to hang a test
        for _ in range(20000):
            next(read)
            time.sleep(0.0005)
            yield "the same line again"

    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        train_interruptibly(*trainer_pair(), endless(), when_read=lambda: None)
    assert time.perf_counter() - started < 5
    time.sleep(0.3)  # the trainer has stopped pulling lines
    seen = next(read)
    time.sleep(0.3)
    assert next(read) == seen + 1


def test_reading_errors_reach_the_caller_and_when_read_is_called_once():
    calls = []
    tokenizer, trainer = trainer_pair()
    train_interruptibly(tokenizer, trainer, ["a b c"] * 100, when_read=lambda: calls.append(1))
    assert calls == [1] and tokenizer.get_vocab_size() > 0

    def bad():
        yield "fine"
        raise UserError("corpus.txt:2: not valid UTF-8")

    with pytest.raises(UserError, match="corpus.txt:2"):
        train_interruptibly(*trainer_pair(), bad(), when_read=lambda: calls.append(2))
    assert calls == [1]
