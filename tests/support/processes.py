"""Processes the integration tests start: the environment they run in, and launches that cannot outlive
their test.

Every launch is in its own session and is killed with its group when it ends or times out, so a hung
collective cannot outlive the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from support.paths import REPO

# What a launcher sets for the processes it starts. An earlier in-process run may have left them in this
# process (its port is still held here); a process started from here must not inherit them.
LAUNCHER = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT = 240  # seconds for any one launch


def environment(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """This process's environment without the launcher's variables and those named in `drop`, plus `extra`."""
    clean = {k: v for k, v in os.environ.items() if k not in (*LAUNCHER, *drop)}
    return {**clean, **extra}


def free_port() -> str:
    """A port nothing listens on now: concurrent test runs never share a rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def launch_env() -> dict[str, str]:
    """For `launch/local.sh` and `python -m alum.cli`: this interpreter, unbuffered output."""
    return environment(ALUM_PYTHON=sys.executable, PYTHONUNBUFFERED="1")


def launch(args: list[str], timeout: int = TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs `args` in the checkout, in a session of its own; fails the test if it runs past `timeout`."""
    proc = subprocess.Popen(args, cwd=REPO, env=launch_env() if env is None else env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(args[:4])} ran past {timeout}s:\n{out[-3000:]}")
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(args, proc.returncode, out, None)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def two(*args: str, timeout: int = TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`alum <args>` in two processes under the deepspeed launcher (launch/local.sh); it must succeed."""
    if env is None and torch.cuda.device_count() < 2:  # on a 1-GPU machine: two CPU processes, not two GPUs
        env = {**launch_env(), "CUDA_VISIBLE_DEVICES": ""}
    result = launch(["bash", "launch/local.sh", "2", *args], timeout, env)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def one(*args: str) -> subprocess.CompletedProcess:
    """`alum <args>` in one plain process; it must succeed."""
    result = launch([sys.executable, "-m", "alum.cli", *args])
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def start(args: list[str], log, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts `args` in the checkout, in a session of its own, its output to the open file `log`; the caller
    waits, signals and finally `kill_group`s it (a test that watches a run while it trains)."""
    return subprocess.Popen(args, cwd=REPO, env=launch_env() if env is None else env, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
