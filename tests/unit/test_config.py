"""Typed YAML configs (alum/config.py): overrides, flags, one-line errors naming the key, and a saved resolved
config."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from alum.config import dump_yaml, load_config
from alum.errors import UserError
from alum.pretrain.config import PretrainConfig


@dataclass
class Optim:
    lr: float = 1e-4
    warmup: int | float = 0.1


@dataclass
class Schema:
    name: str = "run"
    steps: int = 10
    fp16: bool = False
    files: list[str] = field(default_factory=list)
    optim: Optim = field(default_factory=Optim)


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_resolve_with_types(tmp_path):
    path = write(tmp_path, "steps: 5\noptim:\n  lr: 1e-3\nfiles: [a.txt]\n")
    cfg = load_config(Schema, path, ["optim.warmup=100", "fp16=true", "files=b.txt", "name=x"])
    assert cfg.steps == 5 and cfg.optim.lr == 1e-3 and cfg.fp16 is True
    assert cfg.optim.warmup == 100 and isinstance(cfg.optim.warmup, int)
    assert cfg.files == ["b.txt"]
    assert yaml.safe_load(dump_yaml(cfg))["optim"]["lr"] == 1e-3


@pytest.mark.parametrize(
    "text,overrides,message",
    [
        ("optim:\n  lrr: 1\n", [], r"c.yaml: unknown key 'optim.lrr' \(did you mean 'lr'\?\)"),
        ("steps: many\n", [], r"key 'steps' expects int, got str 'many'"),
        ("", ["optim.lr=fast"], r"key 'optim.lr' expects float"),
        ("optim: 3\n", [], r"key 'optim' expects a mapping"),
        ("steps: 1\nfiles: [a\n", [], r"c.yaml:3: malformed YAML"),
        ("- a\n- b\n", [], r"a config must be a mapping"),
        ("", ["steps"], r"override 'steps': expected key.sub=value"),
        ("", ["fp16=maybe"], r"key 'fp16' expects bool"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_key(tmp_path, text, overrides, message):
    with pytest.raises(UserError, match=message) as err:
        load_config(Schema, write(tmp_path, text), overrides)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(Schema, tmp_path / "nope.yaml")


def test_flags_arrive_intact_and_win_over_overrides():
    odd = "runs/x #1: [a, b] {c}"
    cfg = load_config(PretrainConfig, "tiny", ["output=from-override", "max_steps=9"], {"output": odd}, kind="pretrain")
    assert cfg.output == odd and cfg.max_steps == 9


@pytest.mark.parametrize("overrides, switch", [
    ([], 100),  # the preset's start_fraction 0.5 of 200 steps
    (["adversarial.start_step=1"], 1),  # a step: the preset's fraction gives way
    (["adversarial.start_fraction=1"], 200),  # a share: 1 (or 1.0) is the whole run, never step 1
    (["adversarial.start_fraction=0.25"], 50),
])
def test_the_switch_is_a_step_or_a_share_never_confused(overrides, switch):
    cfg = load_config(PretrainConfig, "tiny", overrides, kind="pretrain")
    assert cfg.max_steps == 200 and cfg.switch_step() == switch


def test_a_key_given_on_the_command_line_replaces_its_alternative_from_the_file(tmp_path):
    path = write(tmp_path, "adversarial: {start_step: 7}\n")
    cfg = load_config(PretrainConfig, path, [], {"adversarial.start_fraction": 0.5})
    assert (cfg.adversarial.start_step, cfg.adversarial.start_fraction) == (None, 0.5)
    with pytest.raises(UserError, match="are both set: set one"):  # both on the command line: which one?
        load_config(PretrainConfig, path, ["adversarial.start_step=3", "adversarial.start_fraction=0.5"])
    with pytest.raises(UserError, match=r"c.yaml: key 'adversarial.start' is retired: set adversarial.start_step"):
        load_config(PretrainConfig, write(tmp_path, "adversarial: {start: 1}\n"))
