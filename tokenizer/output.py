"""Writing the output directory so that no run leaves it half-written.

Everything is written into a hidden temporary sibling (`.NAME.partial-XXXX`, same filesystem), which is
renamed into place only when complete. A failure or Ctrl-C removes the temporary directory and leaves an
existing output untouched; with `overwrite`, the old directory is moved aside and removed only after the new
one is in place. A run killed outright (SIGKILL, power loss) can leave the hidden `.partial-` directory
behind, never a half-written NAME.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alum.errors import UserError
from alum.io.publish import publish


def check_target(target: Path, overwrite: bool) -> None:
    """Fail before any work if `target` cannot become the output directory."""
    if target.exists() and not target.is_dir():
        raise UserError(f"output '{target}' exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise UserError(f"output directory '{target}' exists and is not empty (use --overwrite to replace it)")
    for parent in target.parents:  # the first existing ancestor must be a directory we can write in
        if parent.exists():
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"cannot create output directory '{target}': '{parent}' is not a writable directory")
            break


@contextmanager
def staged_directory(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it becomes `target`, on any failure it disappears."""
    target = Path(target)
    check_target(target, overwrite)
    created = _make_parents(target.parent)
    stage = _sibling(target, "partial")
    stage.mkdir()  # not mkdtemp: its mode 0700 would become the output's, unlike any directory the user makes
    try:
        with _terminate_as_interrupt():
            yield stage
            _publish(stage, target, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # parents this run made, innermost first, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _make_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return missing


def _sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:12]}"


def _publish(stage: Path, target: Path, overwrite: bool) -> None:
    if target.exists() and any(target.iterdir()) and not overwrite:  # appeared while we trained
        raise UserError(f"output directory '{target}' was created by someone else during training")
    try:
        publish(stage, target, old=_sibling(target, "old"))
    except OSError as err:
        raise UserError(f"cannot move the new tokenizer into '{target}' ({err})") from None


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (what schedulers and `kill` send) like Ctrl-C, so the clean-up above runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
