"""Every random stream a run draws from, captured and restored for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(extra: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {name: g.get_state() for name, g in (extra or {}).items()},
    }
    return state


def restore(state: dict[str, Any], extra: dict[str, torch.Generator] | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (extra or {}).items():
        g.set_state(state["generators"][name])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
