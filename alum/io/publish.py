"""Putting a directory in place whole: it is written under a sibling name and renamed to its own only when
complete. Siblings share the target's filesystem, so the rename is atomic, and a reader of the target sees
the old directory or the new one, never a half-written one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from alum.errors import UserError


def check_directory(path: Path, flag: str = "--output", given: Path | None = None) -> None:
    """Refuse, before any work, an output directory that cannot be written: it, or a folder above it, is a
    file, or the nearest folder that exists is read-only. `given`: the path the flag named, when `path` is
    the folder of a file to write."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {given or path}: '{parent}' is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {given or path}: '{parent}' is not writable")
            return


def sibling(target: Path, kind: str) -> Path:
    """`NAME.kind` next to `target`."""
    return target.with_name(f"{target.name}.{kind}")


def staging(target: Path) -> Path:
    """`NAME.partial` next to `target`, cleared of what an interrupted earlier write left there."""
    path = sibling(target, "partial")
    shutil.rmtree(path, ignore_errors=True)
    return path


def publish(staged: Path, target: Path, old: Path | None = None) -> None:
    """Rename the complete directory `staged` to `target`.

    An existing `target` is moved aside to `old` (default `NAME.old`) first and removed only once the new
    one is in place, so a kill at any instant leaves one complete copy: at `target`, or at `old` between the
    two renames. If the second rename fails, the old directory is moved back before the error propagates."""
    old = old or sibling(target, "old")
    shutil.rmtree(old, ignore_errors=True)  # left by a run killed between the two renames
    replacing = target.exists()
    if replacing:
        os.replace(target, old)
    try:
        os.replace(staged, target)
    except OSError:
        if replacing:
            os.replace(old, target)
        raise
    if replacing:
        shutil.rmtree(old, ignore_errors=True)
