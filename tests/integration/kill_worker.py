"""Run by tests/integration/test_kills.py: `python kill_worker.py POINT N alum-args...` runs `alum alum-args...`
in this process and SIGKILLs it at POINT inside the Nth checkpoint this process writes (the export points:
inside the first export), as a power cut or the OOM killer would, with no chance to clean up.

Nothing in alum knows about this: the worker wraps, from outside, the calls Checkpointer.save and the export
make (the engine's save_checkpoint, os.replace, shutil.rmtree) and dies just before or after the chosen one.
Before dying it prints one line, `kill_worker: SIGKILL at POINT ...`, for the test to check."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from pathlib import Path

from alum.training import checkpoint

# point: where, in the order Checkpointer.save and export_hf reach them
POINTS = (
    "partial-made",  # step-N.partial/ exists, empty: the engine is about to write into it
    "engine-written",  # the engine state is in step-N.partial/, the random streams are not
    "rng-written",  # rng-rank0.pt is in, state.pt is not
    "state-tmp",  # state.pt.tmp is written, not yet renamed to state.pt
    "state-written",  # step-N.partial/ is complete, not yet renamed to step-N/
    "old-moved-aside",  # re-saving an existing step-N: the old one is renamed to step-N.old, the new not yet in
    "published",  # step-N/ is in place, old checkpoints not yet pruned
    "pruning",  # an old checkpoint half removed (its engine/ gone, its name still step-M)
    "export-aside",  # an existing final/ renamed to final.old, the new one not yet in
    "export-published",  # final/ in place, final_metrics.json not yet written
)
_COMPLETE = re.compile(r"^step-\d+$")


def die(point: str, detail: object) -> None:
    print(f"kill_worker: SIGKILL at {point} ({detail})", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, nth: int) -> None:
    saves = {"n": 0}
    armed = lambda: saves["n"] == nth  # noqa: E731 - inside the chosen checkpoint write

    real_save = checkpoint.Checkpointer.save

    def save(self, engine, step, state, generators):
        saves["n"] += 1
        if armed() and point in ("partial-made", "engine-written"):
            real = engine.save_checkpoint

            def save_checkpoint(directory, *args, **kwargs):
                if point == "partial-made":
                    die(point, directory)
                real(directory, *args, **kwargs)
                die(point, directory)

            engine.save_checkpoint = save_checkpoint
        return real_save(self, engine, step, state, generators)

    real_atomic = checkpoint._atomic_save

    def atomic_save(obj, path):
        real_atomic(obj, path)
        if armed() and point == "rng-written" and Path(path).name.startswith("rng-rank"):
            die(point, path)

    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        src, dst = Path(src), Path(dst)
        if armed() and point == "state-tmp" and dst.name == "state.pt":
            die(point, src)
        real_replace(src, dst, *args, **kwargs)
        if armed() and (
            (point == "state-written" and dst.name == "state.pt")
            or (point == "old-moved-aside" and dst.name.endswith(".old") and dst.name.startswith("step-"))
            or (point == "published" and _COMPLETE.match(dst.name) and src.name.endswith(".partial"))
        ):
            die(point, dst)
        if (point == "export-aside" and dst.name == "final.old") or (
            point == "export-published" and dst.name == "final" and src.name == "final.partial"
        ):
            die(point, dst)

    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if armed() and point == "pruning" and _COMPLETE.match(Path(path).name):
            real_rmtree(Path(path) / checkpoint.ENGINE_TAG)  # the largest part goes first
            die(point, path)
        return real_rmtree(path, *args, **kwargs)

    checkpoint.Checkpointer.save = save
    checkpoint._atomic_save = atomic_save
    os.replace = replace
    shutil.rmtree = rmtree


if __name__ == "__main__":
    point, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if point not in POINTS:
        sys.exit(f"kill_worker: unknown point {point!r}; one of {', '.join(POINTS)}")
    arm(point, nth)
    from alum.cli import main

    sys.exit(main(args))
