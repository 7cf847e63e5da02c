"""Exact resume on one GPU: a pretraining run stopped before the switch and resumed ends with the weights of
the uninterrupted run, bit for bit. Dropout draws from the CUDA generator there, so this holds only if the
checkpoint saves and restores the CUDA random state: with that restore left out, the weights differ."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alum.pretrain import train as pretrain_train
from alum.training import rng
from support.paths import SAMPLE
from support.pretrain import tiny_config

pytestmark = pytest.mark.gpu


@pytest.fixture
def deterministic():
    """Kernels that give the same bits every run (the math attention, deterministic reductions)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    flash, efficient = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    yield
    torch.backends.cuda.enable_flash_sdp(flash)
    torch.backends.cuda.enable_mem_efficient_sdp(efficient)
    torch.use_deterministic_algorithms(False)


def weights(cfg) -> dict[str, torch.Tensor]:
    return load_file(Path(cfg.output) / "final" / "model.safetensors")


def stopped_and_resumed(tmp_path, tokenizer_dir) -> dict[str, torch.Tensor]:
    cfg = tiny_config(tmp_path, tokenizer_dir, SAMPLE, stop_after=2)  # the switch is at step 3
    pretrain_train.run(cfg)
    cfg.stop_after = None
    pretrain_train.run(cfg, resume=True)
    return weights(cfg)


def test_resume_on_one_gpu_is_bit_identical(tmp_path, tokenizer_dir, deterministic, monkeypatch):
    whole = tiny_config(tmp_path / "whole", tokenizer_dir, SAMPLE)
    pretrain_train.run(whole)
    expected = weights(whole)
    assert next(iter(expected.values())).device.type == "cpu"  # loaded from the file

    resumed = stopped_and_resumed(tmp_path / "resumed", tokenizer_dir)
    for key in expected:
        assert torch.equal(resumed[key], expected[key]), f"{key} differs after resume"

    # the control: the same, with the CUDA random state not restored, must differ (dropout masks change)
    restore = rng.restore
    monkeypatch.setattr(rng, "restore", lambda state, extra=None: restore({**state, "cuda": None}, extra))
    unrestored = stopped_and_resumed(tmp_path / "unrestored", tokenizer_dir)
    assert any(not torch.equal(unrestored[k], expected[k]) for k in expected)
