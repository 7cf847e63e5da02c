"""Progress on stderr: a bar over the bytes of the corpus while it is read, then a ticking line while the
trainer computes merges (tokenizers gives no progress for that phase without drawing over our bar)."""

from __future__ import annotations

import threading


class CorpusProgress:
    def __init__(self, total_bytes: int, enabled: bool = True):
        self.enabled = enabled
        self.total = total_bytes
        self._bar = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> CorpusProgress:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="B", unit_scale=True, unit_divisor=1024, desc="reading corpus")
        return self

    def advance(self, n: int) -> None:
        """The `progress` callback of `alum.corpus.iter_texts`: n more bytes of the files read."""
        if self._bar is not None:
            self._bar.update(n)

    def start_merging(self) -> None:
        """Call when the corpus has been read: the trainer now merges, and the line says so."""
        if self._bar is None:
            return
        from tqdm import tqdm

        self._bar.close()
        # The trainer holds no Python lock while it merges, so a thread can keep the elapsed time moving.
        self._bar = tqdm(total=None, desc="computing merges", bar_format="{desc}: {elapsed}")
        self._ticker = threading.Thread(target=self._tick, args=(self._bar,), daemon=True)
        self._ticker.start()

    def _tick(self, bar) -> None:
        while not self._stop.wait(0.5):
            bar.refresh()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()
