"""The DeepSpeed config (alum/training/deepspeed_config.py): every shipped JSON completes from the alum
config, and a JSON that contradicts it is a one-line error."""

from __future__ import annotations

import pytest

from alum.training.deepspeed_config import EngineConfig, deepspeed_config
from alum.training.optim import OptimConfig
from support.paths import CONFIGS


@pytest.mark.parametrize("path", sorted((CONFIGS / "deepspeed").glob("*.json")), ids=lambda p: p.name)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_deepspeed_configs_complete_from_the_yaml(path, precision, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # fp16 is refused without one
    ds = deepspeed_config(EngineConfig(deepspeed=str(path), precision=precision, micro_batch_size=4, grad_accum=2),
                          OptimConfig(clip=0.5))
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 2
    assert ds["bf16"]["enabled"] == (precision == "bf16") and ds["fp16"]["enabled"] == (precision == "fp16")
    assert ds["zero_optimization"]["stage"] in (0, 1, 2, 3)


def test_deepspeed_config_conflicts_are_errors(tmp_path):
    from alum.errors import UserError

    path = tmp_path / "ds.json"
    path.write_text('{"train_micro_batch_size_per_gpu": 16}')
    with pytest.raises(UserError, match="'train_micro_batch_size_per_gpu' is 16 but the alum config says 4"):
        deepspeed_config(EngineConfig(deepspeed=str(path), micro_batch_size=4), OptimConfig())
    path.write_text('{"optimizer": {"type": "Adam"}}')
    with pytest.raises(UserError, match="remove 'optimizer'"):
        deepspeed_config(EngineConfig(deepspeed=str(path)), OptimConfig())
    path.write_text('{"zero_optimization": {"stage": 2,}')
    with pytest.raises(UserError, match=r"ds.json:1: malformed JSON"):
        deepspeed_config(EngineConfig(deepspeed=str(path)), OptimConfig())


def test_fp16_without_cuda_is_refused_naming_the_key_and_bf16_is_not(monkeypatch):
    import torch

    from alum.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"^engine.precision=fp16 needs a CUDA GPU .*use engine.precision=fp32"):
        deepspeed_config(EngineConfig(precision="fp16"), OptimConfig())
    assert deepspeed_config(EngineConfig(precision="bf16"), OptimConfig())["bf16"]["enabled"] is True
