"""Run by tests/integration/test_finetune_hf_trainer.py in a fresh process: train ALUM and SMART through the
AdversarialTrainer, under a one-process gloo DDP when asked (accelerate's state is per process, so the plain
and the DDP run cannot share one), and save the weights and the wrapper's type."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`

from alum.training.hf_trainer import AdversarialTrainer  # noqa: E402
from support.hf_trainer import trained  # noqa: E402


def main(out: Path, ddp: bool) -> None:
    if ddp:
        os.environ.update(MASTER_ADDR="127.0.0.1", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        dist.init_process_group("gloo")
    results = {}
    for name in ("alum", "smart"):
        trainer, model = trained(AdversarialTrainer, out / name, adversarial=name)
        results[name] = {"wrapper": type(trainer.model_wrapped).__name__, "weights": model.state_dict()}
    torch.save(results, out / "results.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "ddp")
