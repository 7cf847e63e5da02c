"""Pretraining on a machine with no C++ compiler: CPU runs, of one process or two, build no DeepSpeed op and
train, and a run that needs a compiled op (ZeRO optimizer offload's CPU Adam) stops before training with one line.

Each run is a fresh process whose PATH holds every program but the compilers, whose CC and CXX name nothing,
and whose extension cache is empty, so no op built earlier on this machine can be reused."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alum.config import save_config
from support.pretrain import pretrain_args, tiny_config
from support.processes import environment, launch_env, two

COMPILER = re.compile(r"^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+)(-[\d.]+)?$|-(gcc|g\+\+|c\+\+|cpp)(-[\d.]+)?$")
TIMEOUT = 300


def without_compiler(tmp_path: Path) -> dict[str, str]:
    programs = tmp_path / "bin"
    programs.mkdir(exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = programs / entry.name
            if not COMPILER.search(entry.name) and not os.path.lexists(link):
                link.symlink_to(entry.path)
    env = environment(PATH=str(programs), CC=str(tmp_path / "no-cc"), CXX=str(tmp_path / "no-c++"),
                      TORCH_EXTENSIONS_DIR=str(tmp_path / "torch-extensions"))
    assert shutil.which("c++", path=env["PATH"]) is None and shutil.which("gcc", path=env["PATH"]) is None
    return env


def pretrain(tmp_path: Path, cfg, *flags: str) -> subprocess.CompletedProcess:
    config = tmp_path / "pretrain.yaml"
    save_config(cfg, config)
    return subprocess.run([sys.executable, "-m", "alum.cli", "pretrain", "--config", str(config), *flags],
                          env=without_compiler(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)


def built_ops(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "torch-extensions").rglob("*.so"))


def test_one_cpu_process_trains_without_building_an_op(tmp_path, tokenizer_dir, small_corpus):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=4)
    result = pretrain(tmp_path, cfg)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (Path(cfg.output) / "final" / "model.safetensors").is_file()
    assert built_ops(tmp_path) == []


@pytest.mark.slow
def test_two_cpu_processes_train_without_building_an_op(tmp_path, tokenizer_dir):
    # launched as test_distributed.py launches (process groups killed on a timeout); only the environment differs
    two(*pretrain_args(tokenizer_dir, tmp_path / "run", 4, 2), env={**launch_env(), **without_compiler(tmp_path)})
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert built_ops(tmp_path) == []


def test_optimizer_offload_without_a_compiler_is_one_line_before_training(tmp_path, tokenizer_dir, small_corpus):
    cfg = tiny_config(tmp_path, tokenizer_dir, small_corpus, max_steps=4)
    result = pretrain(tmp_path, cfg, "--deepspeed", "zero2-offload")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert lines[-1].startswith("alum pretrain: error: optimizer offload") and "no C++ compiler was found" in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (Path(cfg.output) / "checkpoints").exists() and built_ops(tmp_path) == []
