"""Process-group plumbing: one plain process, the `deepspeed` launcher, or torchrun, all look the same."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist


def ensure_launch_env() -> None:
    """A plain `python`/`alum` process has no launcher: give it a one-process world, so DeepSpeed does not
    go looking for MPI."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def backend() -> str | None:
    """The collective backend: ALUM_DIST_BACKEND (launch/local.sh sets gloo for CPU processes), else
    DeepSpeed's choice for the accelerator (nccl on GPUs)."""
    return os.environ.get("ALUM_DIST_BACKEND") or (None if torch.cuda.is_available() else "gloo")


def start_group() -> None:
    """The process group, as the engine would make it, made early: work before the engine (preparing the
    corpus on rank 0) needs a barrier. The barrier waits as long as that takes (a day at most), not the
    default half hour. Nothing to do in a one-process run."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return
    from datetime import timedelta

    import deepspeed

    from alum.training import deepspeed_ops

    deepspeed_ops.skip_shared_memory_comm()
    kind = backend()
    deepspeed.init_distributed(**({"dist_backend": kind} if kind else {}), timeout=timedelta(hours=24))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized() and world_size() > 1:
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if `flag` is true on any rank (every rank must call this)."""
    if not dist.is_initialized() or world_size() == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average every metric over ranks (every rank must call this with the same keys)."""
    if not dist.is_initialized() or world_size() == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: v / world_size() for k, v in zip(keys, tensor.tolist())}
