"""Fixtures of the end-to-end tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.paths import SAMPLE


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """The first 200 lines of the embedded sample, as a text file."""
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:200]), encoding="utf-8")
    return path
