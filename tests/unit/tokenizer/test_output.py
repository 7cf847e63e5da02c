"""The output directory appears whole or not at all, and an existing one survives every failure."""

from __future__ import annotations

import os
import signal
import stat
import time

import pytest

from alum.errors import UserError
from alum.tokenizer.output import check_target, staged_directory


class Boom(Exception):
    pass


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


def existing_output(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "tokenizer.json").write_text("old")
    return target


def test_success_publishes_and_leaves_no_staging(tmp_path):
    target = tmp_path / "out"
    with staged_directory(target, overwrite=False) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".out.partial-")
        assert not target.exists()  # nothing at the final name while writing
        (stage / "a.json").write_text("new")
    assert entries(tmp_path) == ["out"] and (target / "a.json").read_text() == "new"


def test_output_mode_follows_the_umask_not_0700(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_directory(tmp_path / "out", overwrite=False):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("overwrite", [False, True])
def test_failure_removes_the_staging_and_keeps_the_existing_output(tmp_path, error, overwrite):
    target = existing_output(tmp_path) if overwrite else tmp_path / "out"
    with pytest.raises(error):
        with staged_directory(target, overwrite=overwrite) as stage:
            (stage / "tokenizer.json").write_text("half")
            raise error()
    if overwrite:
        assert entries(tmp_path) == ["out"] and (target / "tokenizer.json").read_text() == "old"
    else:
        assert entries(tmp_path) == []


def test_sigterm_counts_as_an_interrupt_and_cleans_up(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with staged_directory(tmp_path / "out", overwrite=False):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
    assert entries(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_overwrite_replaces_the_old_directory_completely(tmp_path):
    target = existing_output(tmp_path)
    (target / "stale.txt").write_text("x")
    with staged_directory(target, overwrite=True) as stage:
        (stage / "tokenizer.json").write_text("new")
    assert entries(tmp_path) == ["out"] and entries(target) == ["tokenizer.json"]
    assert (target / "tokenizer.json").read_text() == "new"


def test_non_empty_output_without_overwrite_is_refused_before_any_work(tmp_path):
    target = existing_output(tmp_path)
    with pytest.raises(UserError, match="'.*out' exists and is not empty \\(use --overwrite to replace it\\)"):
        with staged_directory(target, overwrite=False):
            pytest.fail("the block must not run")
    assert entries(tmp_path) == ["out"] and (target / "tokenizer.json").read_text() == "old"


def test_empty_existing_directory_is_simply_used(tmp_path):
    (tmp_path / "out").mkdir()
    with staged_directory(tmp_path / "out", overwrite=False) as stage:
        (stage / "x").write_text("1")
    assert entries(tmp_path / "out") == ["x"]


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        check_target(tmp_path / "out", overwrite=True)


def test_parents_made_for_a_failed_run_are_removed_and_others_kept(tmp_path):
    (tmp_path / "keep").mkdir()
    with pytest.raises(Boom):
        with staged_directory(tmp_path / "keep" / "new" / "deeper" / "out", overwrite=False):
            raise Boom()
    assert entries(tmp_path) == ["keep"] and entries(tmp_path / "keep") == []


def test_unwritable_parent_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UserError, match="is not a writable directory"):
        check_target(locked / "out", overwrite=False)
