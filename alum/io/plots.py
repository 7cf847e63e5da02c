"""PNG plots of a run, drawn from its metrics.jsonl records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402


def loss_curve(records: list[dict[str, Any]], path: str | Path, switch_step: int | None, title: str) -> Path:
    """Training MLM loss (and the adversarial loss) per step, validation loss, the switch point marked."""
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train MLM loss", lw=1.2)
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation MLM loss", lw=1.5)
    adv = [r for r in train if isinstance(r.get("adv_loss"), float)]
    if adv:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in adv], [r["adv_loss"] for r in adv], color="tab:red", alpha=0.6, lw=1,
                 label="adversarial loss (right axis)")
        ax2.set_ylabel("adversarial loss")
        ax2.legend(loc="upper center", fontsize=8)
    if switch_step is not None:
        ax.axvline(switch_step, color="gray", ls="--", lw=1)
        ax.annotate("adversarial phase", (switch_step, ax.get_ylim()[0]), fontsize=8, ha="left", va="bottom",
                    xytext=(4, 4), textcoords="offset points", color="gray")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def metric_per_epoch(series: dict[str, list[tuple[float, float]]], path: str | Path, metric: str, title: str) -> Path:
    """One line per method: the dev metric after each epoch."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
