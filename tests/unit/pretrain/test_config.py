"""The pretrain stage's config (pretrain/config.py): the core's adversarial section with pretraining's schedule,
its methods' options read and checked as the config loads, before any model, data or engine exists."""

from __future__ import annotations

import pytest

from alum.adversarial.smoothness import SmartConfig, SmoothnessConfig
from alum.cli import main
from alum.config import load_config
from alum.errors import UserError
from alum.pretrain import train
from alum.pretrain.config import PretrainConfig


def load(*overrides: str) -> PretrainConfig:
    return load_config(PretrainConfig, "tiny", list(overrides), kind="pretrain")


@pytest.mark.parametrize("overrides,message", [
    (["adversarial.options.alum.alpha=-1"], "adversarial.options.alum.alpha must be >= 0, not -1.0"),
    (["adversarial.options.alum.alpha=big"], "key 'adversarial.options.alum.alpha' expects float, got str 'big'"),
    (["adversarial.options.alum.alpah=3"], "unknown key 'adversarial.options.alum.alpah' \\(did you mean 'alpha'\\?\\)"),
    (["adversarial.options={alpha: 3}"], "adversarial.options.alpha: unknown method"),
    (["adversarial.options.smart.mu=-1"], "adversarial.options.smart.mu must be >= 0"),  # an entry that does not run
    (["adversarial.options.none.alpha=1"], "adversarial.options.none: method 'none' takes no options"),
    (["adversarial.method=almu"], "adversarial.method: unknown method 'almu'"),
    (["adversarial.method=alum,smart"], "adversarial.method: pretraining runs one method after the switch"),
    (["adversarial.method=freeat", "engine.grad_accum=2"], "engine.grad_accum: freeat takes an optimizer step"),
])
def test_bad_methods_and_options_fail_as_the_config_loads(overrides, message):
    with pytest.raises(UserError, match=message) as err:
        load(*overrides)
    assert "\n" not in str(err.value)


def test_options_are_read_into_each_methods_own_config():
    cfg = load("adversarial.options.alum.sigma=1e-5", "adversarial.options.smart.mu=2")
    alum, smart = cfg.adversarial.options["alum"], cfg.adversarial.options["smart"]
    assert type(alum) is SmoothnessConfig and (alum.alpha, alum.sigma) == (10.0, 1e-5)  # the preset's alpha kept
    assert type(smart) is SmartConfig and smart.mu == 2.0
    assert cfg.adversarial.build("alum").config is alum  # built from the typed options, not read again
    # the running method gets its defaults when no entry is given, so the saved config shows what ran
    assert load("adversarial.method=fgm").adversarial.options["fgm"].eps == 1.0


def test_the_command_refuses_bad_options_before_the_run_begins(monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the run began: the options were not checked as the config loaded")

    monkeypatch.setattr(train, "run", never)
    code = main(["pretrain", "--config", "tiny", "--tokenizer", "no/tokenizer", "adversarial.options.alum.alpha=-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("alum pretrain: error: ") and "adversarial.options.alum.alpha must be >= 0" in err
