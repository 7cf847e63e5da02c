"""A directory is put in place whole, and an existing one survives until its replacement is there."""

from __future__ import annotations

import os

import pytest

from alum.io.publish import publish, staging


def directory(path, **files):
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_new_target_appears_and_nothing_else_remains(tmp_path):
    publish(directory(tmp_path / "out.partial", a="new"), tmp_path / "out")
    assert entries(tmp_path) == ["out"] and (tmp_path / "out" / "a").read_text() == "new"


def test_existing_target_is_replaced_whole(tmp_path):
    directory(tmp_path / "out", a="old", stale="x")
    publish(directory(tmp_path / "out.partial", a="new"), tmp_path / "out")
    assert entries(tmp_path) == ["out"] and entries(tmp_path / "out") == ["a"]
    assert (tmp_path / "out" / "a").read_text() == "new"


def test_old_copy_left_by_a_killed_run_does_not_block(tmp_path):
    directory(tmp_path / "out", a="old")
    directory(tmp_path / "out.old", a="older")
    publish(directory(tmp_path / "out.partial", a="new"), tmp_path / "out")
    assert entries(tmp_path) == ["out"] and (tmp_path / "out" / "a").read_text() == "new"


def test_failed_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    directory(tmp_path / "out", a="old")
    staged = directory(tmp_path / "out.partial", a="new")
    real = os.replace

    def replace(src, dst):
        if str(src) == str(staged):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        publish(staged, tmp_path / "out")
    assert (tmp_path / "out" / "a").read_text() == "old" and not (tmp_path / "out.old").exists()


def test_staging_clears_what_an_interrupted_write_left(tmp_path):
    directory(tmp_path / "out.partial", half="x")
    path = staging(tmp_path / "out")
    assert path == tmp_path / "out.partial" and not path.exists()
