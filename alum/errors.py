"""The one exception type users see: a bad input, reported on one line before any work starts; and the one
failure of the machine reported the same way, a disk that refuses a write."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Bad input from the user (a file, a config key, a flag). The CLI prints it on one line and exits 2."""


# A full disk or a file-size limit reaches us as OSError, or wrapped by a library that writes in Rust
# (tokenizers, safetensors) as its own error saying "(os error N)".
_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def disk_full(err: BaseException) -> str | None:
    """What to tell the user when `err` is a write the disk refused; None when it is something else."""
    if isinstance(err, OSError) and err.errno in _FULL:
        return f"{err.filename or 'a file'}: {os.strerror(err.errno)}"
    for code in _FULL:
        if f"(os error {code})" in str(err):
            return f"{os.strerror(code)} ({type(err).__name__})"
    return None


@contextmanager
def writing(what: str, target: object) -> Iterator[None]:
    """A write the system refuses inside the block (a full disk, a quota, a file-size limit, permissions) ends
    in one line naming what was being written and where; any other error passes through. The caller removes
    what it had staged."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - Rust writers (tokenizers, safetensors) raise their own types
        full = disk_full(err)
        if full is None and isinstance(err, OSError) and err.errno is not None:
            full = f"{err.filename or 'a file'}: {err.strerror}"
        if full is None:
            raise
        raise UserError(f"cannot write {what} to '{target}': {full}") from None
