"""Every shipped config is valid against its schema (a broken preset fails here, not on a cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alum.adversarial import METHODS, build_methods
from alum.config import load_config
from alum.errors import UserError
from alum.presets import names, preset
from alum.training.deepspeed_config import EngineConfig, deepspeed_config
from alum.training.optim import OptimConfig
from alum.pretrain.config import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_pretrain_presets_load(path):
    cfg = load_config(PretrainConfig, path)
    build_methods([cfg.adversarial.method], cfg.adversarial.options)
    assert 0 <= cfg.switch_step() <= cfg.max_steps
    if cfg.engine.deepspeed:
        deepspeed_config(EngineConfig(**{**vars(cfg.engine), "deepspeed": str(CONFIGS.parent / cfg.engine.deepspeed)}), cfg.optim)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_pretrain_preset_takes_any_method(method):
    # options are keyed by method name in every stage: the preset's ALUM options do not bind another method
    cfg = load_config(PretrainConfig, "tiny", [f"adversarial.method={method}"], kind="pretrain")
    built = build_methods([method], cfg.adversarial.options)[method]
    assert built.name == method and cfg.adversarial.options["alum"]["alpha"] == 10.0


def test_presets_are_found_by_name_or_path(tmp_path):
    assert preset("pretrain", "tiny") == CONFIGS / "pretrain" / "tiny.yaml"
    assert preset("deepspeed", "zero2") == CONFIGS / "deepspeed" / "zero2.json"
    assert names("finetune") == sorted(p.stem for p in (CONFIGS / "finetune").glob("*.yaml"))
    own = tmp_path / "tiny"  # a file of that name is the user's, not the preset
    own.write_text("max_steps: 7\n")
    assert load_config(PretrainConfig, str(own), kind="pretrain").max_steps == 7
    with pytest.raises(UserError, match="--config tinny: neither a file nor a pretrain preset .*tiny"):
        preset("pretrain", "tinny")
    ds = deepspeed_config(EngineConfig(deepspeed="zero1"), OptimConfig())
    assert ds["zero_optimization"]["stage"] == 1


def test_flags_arrive_intact_and_win_over_overrides():
    odd = "runs/x #1: [a, b] {c}"
    cfg = load_config(PretrainConfig, "tiny", ["output=from-override", "max_steps=9"], {"output": odd}, kind="pretrain")
    assert cfg.output == odd and cfg.max_steps == 9


def test_method_requirements_are_checked_in_one_place():
    with pytest.raises(UserError, match="engine.grad_accum: freeat takes an optimizer step on every replay.*needs 1 \\(got 2\\)"):
        build_methods(["freeat"], {}, grad_accum=2)
    with pytest.raises(UserError, match="smart cannot run under ZeRO stage 3"):
        build_methods(["smart"], {}, zero_stage=3)
    with pytest.raises(UserError, match="adversarial.options.smart.alpah"):
        build_methods(["fgm"], {"smart": {"alpah": 1}})  # an entry not run is checked too
    assert set(build_methods(["alum", "smart"], {}, grad_accum=4, zero_stage=2)) == {"alum", "smart"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "deepspeed").glob("*.json")), ids=lambda p: p.name)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_deepspeed_configs_complete_from_the_yaml(path, precision):
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
