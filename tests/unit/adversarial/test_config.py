"""The adversarial section every stage's config holds (alum/adversarial/config.py): each method's options read
into that method's own Config once, as the config loads, and the methods built from them as they are."""

from __future__ import annotations

import dataclasses

import pytest

from alum import config as config_module
from alum.adversarial import METHODS, SinglePass
from alum.adversarial.config import AdversarialConfig
from alum.config import from_dict
from alum.errors import UserError


def load(data: dict) -> AdversarialConfig:
    return from_dict(AdversarialConfig, data, source="c.yaml", prefix="adversarial.")


def test_every_entry_becomes_its_methods_config_and_the_running_ones_get_defaults():
    section = load({"method": "fgm", "options": {"smart": {"mu": 2}, "pgd": None}})
    assert type(section.options["smart"]) is METHODS["smart"].Config and section.options["smart"].mu == 2.0
    assert section.options["pgd"] == METHODS["pgd"].Config()  # an empty entry: the defaults
    assert section.options["fgm"] == METHODS["fgm"].Config()  # runs, and no entry was given


@pytest.mark.parametrize("data,message", [
    ({"options": {"smart": {"alpah": 1}}}, "c.yaml: unknown key 'adversarial.options.smart.alpah' \\(did you mean"),
    ({"options": {"smart": {"beta": 2}}}, "c.yaml: adversarial.options.smart.mu must be >= 0 and beta"),
    ({"options": {"smart": 1.0}}, "c.yaml: adversarial.options.smart: expects a mapping of option names"),
    ({"options": {"smrt": {}}}, "c.yaml: adversarial.options.smrt: unknown method \\(known: none, fgsm"),
    ({"options": [1]}, "c.yaml: adversarial.options: expects a mapping of method names"),
    ({"method": "none, vta"}, "c.yaml: adversarial.method: unknown method 'vta'"),
    ({"method": ["fgm", "fgm"]}, "c.yaml: adversarial.method: a method is listed twice"),
    ({"method": " , "}, "c.yaml: adversarial.method: name at least one method"),
])
def test_a_bad_method_or_option_is_one_line_naming_the_key(data, message):
    with pytest.raises(UserError, match=message) as err:
        load({"method": "none", **data})
    assert "\n" not in str(err.value)


def test_methods_are_a_list_or_names_separated_by_commas():
    assert load({"method": "none, smart"}).methods == load({"method": ["none", "smart"]}).methods == ["none", "smart"]


def test_a_method_is_built_from_its_typed_options_without_reading_them_again(monkeypatch):
    section = load({"method": "alum,pgd", "options": {"alum": {"alpha": 3}}})

    def no_second_read(*args, **kwargs):
        raise AssertionError("options read again after the config loaded")

    monkeypatch.setattr(config_module, "from_dict", no_second_read)
    alum = section.build("alum")
    assert alum.config is section.options["alum"] and alum.config.alpha == 3.0
    assert section.build("pgd").config is section.options["pgd"]


def test_an_entry_set_in_code_after_loading_is_read_when_built():
    section = load({"method": "pgd"})
    section.options["pgd"] = {"steps": 0}
    with pytest.raises(UserError, match="adversarial.options.pgd.steps must be at least 1"):
        section.build("pgd")


@pytest.mark.parametrize("name", [m for m in METHODS if issubclass(METHODS[m], SinglePass)])
def test_the_terms_weight_is_read_under_the_options_own_name(name):
    # one name per meaning: the option a user writes (alpha, weight) is the one the step reads
    cls = METHODS[name]
    assert cls.weight_option in {f.name for f in dataclasses.fields(cls.Config)}
