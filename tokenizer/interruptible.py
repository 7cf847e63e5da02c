"""Running the `tokenizers` trainer so that Ctrl-C (or SIGTERM) stops it at once.

Python handles signals in the main thread only, between bytecodes. While `train_from_iterator` runs, the
main thread is inside Rust and the corpus generator is called from the trainer's worker threads, so a
Ctrl-C would wait for the whole training to end. Here the trainer runs in a worker thread instead; the main
thread waits in short joins, receives the interrupt at once, and tells the reading loop to stop, which ends
the trainer at its next line. (Once the corpus has been read the trainer computes merges in Rust and cannot
be stopped; the main thread then leaves without it, and the process exits.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator


def train_interruptibly(tokenizer, trainer, texts: Iterable[str], when_read: Callable[[], None]) -> None:
    """`tokenizer.train_from_iterator(texts, trainer)`, calling `when_read()` once every text is read."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def feed() -> Iterator[str]:
        for text in texts:
            if stop.is_set():
                raise KeyboardInterrupt
            yield text
        when_read()

    def work() -> None:
        try:
            tokenizer.train_from_iterator(feed(), trainer)
        except BaseException as err:  # re-raised in the main thread: a strict-mode error, a bad file
            failure.append(err)

    worker = threading.Thread(target=work, name="bpe-trainer", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except BaseException:
        stop.set()
        raise
    if failure:
        raise failure[0]
