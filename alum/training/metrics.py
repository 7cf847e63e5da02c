"""Where metrics go: the console, `metrics.jsonl` in the output directory, and wandb when enabled.
Only rank 0 writes; every rank may call (the others do nothing)."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm



@dataclass
class WandbConfig:
    enabled: bool = False
    project: str = "alum"
    name: str | None = None
    mode: Literal["offline", "online"] = "offline"  # offline runs sync later with `wandb sync`


class MetricsLog:
    def __init__(self, output_dir: str | Path, wandb: WandbConfig, run_config: dict[str, Any], resume: bool = False):
        self.enabled = _is_main()
        self.path = Path(output_dir) / "metrics.jsonl"
        self.run = None
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume:
            self.path.write_text("")
        if wandb.enabled:
            import wandb as wandb_lib

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb_lib.init(
                project=wandb.project, name=wandb.name, mode=os.environ.get("WANDB_MODE", wandb.mode),
                dir=str(self.path.parent), config=run_config, resume="allow",
            )

    def truncate_after(self, step: int) -> None:
        """On resume, drop records past the checkpoint so that the log reads as one uninterrupted run."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any], console: bool = True) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.run is not None:
            self.run.log({k: v for k, v in record.items() if isinstance(v, int | float)}, step=step)
        if console:
            tqdm.write(format_metrics(record))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


def say(message: str) -> None:
    """A line on the console from rank 0 alone, printed above any progress bar rather than through it."""
    if _is_main():
        tqdm.write(message)


class _SayHandler(logging.Handler):
    """The perturbation core's one-line messages (the `alum` logger: a delta that rounds away) go to the console
    as every other line does: from rank 0, above the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        say(f"{record.name}: {record.getMessage()}")


def route_core_messages() -> None:
    """Once per process: the `alum` logger's records through `say`, not through the root logger."""
    logger = logging.getLogger("alum")
    if not any(isinstance(h, _SayHandler) for h in logger.handlers):
        logger.addHandler(_SayHandler())
        logger.propagate = False


route_core_messages()


def progress_bar(total: int, desc: str, initial: int = 0, unit: str = "it", leave: bool = True) -> tqdm:
    """The progress bar of a training loop or any other long phase, drawn by rank 0 alone. `leave=False`: gone
    when done (a phase whose result a line reports)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, disable=not _is_main(),
                dynamic_ncols=True)


def _is_main() -> bool:
    # imported here: WandbConfig above is a schema the stage configs load without torch
    from alum.training import distributed

    return distributed.is_main()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def format_metrics(record: dict[str, Any]) -> str:
    parts = []
    for k, v in record.items():
        if v is None:
            continue
        if isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
