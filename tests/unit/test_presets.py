"""The presets (alum/presets.py): found by name or path, and every shipped pretrain config is valid against its
schema (a broken preset fails here, not on a cluster). The other presets are checked with their stage's
config: tokenizer/test_config.py, finetune/test_config.py, training/test_deepspeed_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from alum.adversarial import METHODS
from alum.config import load_config
from alum.errors import UserError
from alum.presets import data_file, names, preset, sample
from alum.training.deepspeed_config import EngineConfig, deepspeed_config
from alum.training.optim import OptimConfig
from alum.pretrain.config import PretrainConfig
from support.paths import CONFIGS


@pytest.mark.parametrize("path", sorted((CONFIGS / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_pretrain_presets_load(path):
    cfg = load_config(PretrainConfig, path)  # every method's options are read into its Config as it loads
    name = cfg.adversarial.methods[0]
    assert isinstance(cfg.adversarial.options[name], METHODS[name].Config)
    assert 0 <= cfg.switch_step() <= cfg.max_steps
    if cfg.engine.deepspeed:  # named by preset, so the config works from any working directory
        deepspeed_config(cfg.engine, cfg.optim)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_pretrain_preset_takes_any_method(method):
    # options are keyed by method name in every stage: the preset's ALUM options do not bind another method
    cfg = load_config(PretrainConfig, "tiny", [f"adversarial.method={method}"], kind="pretrain")
    built = cfg.adversarial.build(method)
    assert built.name == method and cfg.adversarial.options["alum"].alpha == 10.0


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


def test_shipped_data_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data_file("data/glue/SST-2/dev.tsv") == sample("glue/SST-2/dev.tsv")
    assert data_file("data/glue/SST-2/dev.tsv").is_file()
    assert data_file("data/glue/nothing.tsv") == Path("data/glue/nothing.tsv")  # the user's error names their path
    (tmp_path / "data/glue/SST-2").mkdir(parents=True)
    (tmp_path / "data/glue/SST-2/dev.tsv").write_text("sentence\tlabel\n")
    assert data_file("data/glue/SST-2/dev.tsv") == Path("data/glue/SST-2/dev.tsv")  # a file here is the user's
