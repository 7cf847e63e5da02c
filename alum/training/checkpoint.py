"""Checkpoints a kill cannot corrupt: each is written into `step-N.partial/` and renamed to `step-N/` only
once every rank has finished, so a directory named `step-N` is always complete. Keeps the last N.

A checkpoint holds the DeepSpeed engine state (weights, optimizer, scheduler, loss scaler), every rank's
random streams, and `state.pt` with what the loop needs to continue exactly (data position, counters, the
adversarial method's state)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from alum.io.publish import publish, sibling
from alum.training import distributed, rng

_STEP_DIR = re.compile(r"^step-(\d+)$")
ENGINE_TAG = "engine"


class Checkpointer:
    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.keep = max(1, keep)

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, engine, step: int, state: dict[str, Any], generators: dict[str, torch.Generator]) -> Path:
        final = self.root / f"step-{step:08d}"
        partial = sibling(final, "partial")
        if distributed.is_main():
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)  # left by an earlier interrupted write
            partial.mkdir()
        distributed.barrier()
        engine.save_checkpoint(str(partial), tag=ENGINE_TAG, save_latest=False)
        _atomic_save(rng.capture(generators), partial / f"rng-rank{distributed.rank()}.pt")
        if distributed.is_main():
            _atomic_save(state, partial / "state.pt")
        distributed.barrier()
        if distributed.is_main():
            publish(partial, final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        distributed.barrier()
        return final

    @staticmethod
    def load(engine, path: Path, generators: dict[str, torch.Generator]) -> dict[str, Any]:
        engine.load_checkpoint(str(path), tag=ENGINE_TAG, load_optimizer_states=True, load_lr_scheduler_states=True)
        rank_file = path / f"rng-rank{distributed.rank()}.pt"
        if not rank_file.is_file():
            raise FileNotFoundError(
                f"{path} was written by fewer processes than this run has (no {rank_file.name}); "
                "resume with the world size it was written with"
            )
        rng.restore(torch.load(rank_file, weights_only=False), generators)
        return torch.load(path / "state.pt", weights_only=False)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
