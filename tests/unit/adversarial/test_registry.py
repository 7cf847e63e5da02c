"""The method registry (alum/adversarial/registry.py): methods and their options by name, with one-line
errors, and each method's requirements checked in one place.

A method from another package, found through the `alum.methods` entry point: the whole method is the one
file in PLUGIN, installed here as a real distribution (a module and its .dist-info) on sys.path."""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch

from alum.adversarial import METHODS, Target, build_method
from alum.adversarial import functional as AF
from alum.adversarial.config import AdversarialConfig
from alum.config import from_dict
from alum.errors import UserError
from support.models import classification_forward, make_batch, tiny_classifier
from support.trainers import RecordingTrainer


def test_unknown_method_and_unknown_option_are_one_line_errors():
    with pytest.raises(UserError, match="unknown method 'almu'"):
        build_method("almu")
    with pytest.raises(UserError, match="unknown key 'alum.alpah'.*did you mean 'alpha'"):
        build_method("alum", {"alpah": 1.0})
    with pytest.raises(UserError, match="'pgd.steps' expects int"):
        build_method("pgd", {"steps": "many"})
    with pytest.raises(UserError, match=r"adversarial.options.none: method 'none' takes no options"):
        build_method("none", {"alpha": 10.0}, prefix="adversarial.options.none.")


def adversarial(method, options=None) -> AdversarialConfig:
    """The `adversarial` section as a stage's config loads it."""
    return from_dict(AdversarialConfig, {"method": method, "options": options or {}}, prefix="adversarial.")


def test_method_requirements_are_checked_in_one_place():
    assert "freeat takes an optimizer step on every replay" in adversarial("freeat").refusal(2, 0)
    assert "needs 1 (got 2)" in adversarial("freeat").refusal(2, 0)
    assert "smart cannot run under ZeRO stage 3" in adversarial("fgm,smart").refusal(1, 3)
    assert adversarial("alum,smart").refusal(grad_accum=4, zero_stage=2) is None
    with pytest.raises(UserError, match="adversarial.options.smart.alpah"):
        adversarial("fgm", {"smart": {"alpah": 1}})  # an entry not run is checked too


PLUGIN = '''
from dataclasses import dataclass

import torch

from alum.adversarial import SinglePass


class GaussianNoise(SinglePass):
    """The task loss at x + Gaussian noise at the word embeddings: the baseline an attack must beat."""

    name = "noise"
    summary = "task loss at x + N(0, sigma^2) noise at the word embeddings"

    @dataclass
    class Config:
        sigma: float = 0.05  # std of the noise per coordinate
        weight: float = 1.0

    def adversarial_term(self, target, batch, clean, trainer):
        delta = torch.randn(self.delta_shape(target, batch), device=clean.mask.device) * self.config.sigma * clean.mask
        return self.perturbed(target, batch, delta).loss, delta, None
'''


def install(root, module: str, entry_points: str, source: str = PLUGIN) -> None:
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[alum.methods]\n{entry_points}\n")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A directory on sys.path for installed packages; what they registered is removed afterwards."""
    before = set(METHODS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(METHODS) - before:
        with contextlib.suppress(KeyError):
            del METHODS[name]
    for module in [m for m in sys.modules if m.startswith("alum_plugin_")]:
        del sys.modules[module]


def test_a_method_from_another_package_trains_by_name(plugin_path, capsys):
    assert "noise" not in METHODS
    install(plugin_path, "alum_plugin_noise", "noise = alum_plugin_noise:GaussianNoise")

    method = build_method("noise", {"sigma": 0.1})  # an unknown name: the registry looks again, and finds it
    assert type(method).__module__ == "alum_plugin_noise" and method.config.sigma == 0.1
    assert "noise" in METHODS and list(METHODS)[-1] == "noise"
    assert adversarial("noise,fgm", {"noise": {"sigma": 0.2}}).build("noise").config.sigma == 0.2
    with pytest.raises(UserError, match="adversarial.options.noise.sigmaa"):
        adversarial("noise", {"noise": {"sigmaa": 0.2}})

    model = tiny_classifier("bert")
    target = Target(model, classification_forward)
    method.setup(target, total_updates=1)
    batch = make_batch(2)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = RecordingTrainer(model, lr=0.05)
    torch.manual_seed(0)
    report = method.step(target, batch, trainer)
    trainer.optimizer_step()
    assert trainer.backwards == 1 and report.skipped == 0 and method.skipped_total == 0
    assert trainer.losses[0] == pytest.approx(report.loss + report.adv_loss, rel=1e-6)  # weight 1
    assert report.grad_norm is None and report.delta_norm > 0
    padding = batch["attention_mask"] == 0
    assert method.last_delta[padding].abs().max() == 0 and method.last_delta[~padding].abs().min() > 0
    assert AF.norm(method.last_delta, "l2", "token")[~padding].mean() == pytest.approx(0.1 * 32**0.5, rel=0.2)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    from alum.cli import main

    assert main(["methods"]) == 0
    assert "noise    [needs labels] task loss at x + N(0, sigma^2) noise" in capsys.readouterr().out


def test_the_finetune_config_takes_a_method_from_another_package(plugin_path):
    from alum.finetune.config import load_finetune_config

    install(plugin_path, "alum_plugin_noise", "noise = alum_plugin_noise:GaussianNoise")
    cfg = load_finetune_config("sst2", ["model=m", "data.train_file=t", "data.dev_file=d",
                                        "adversarial.method=noise,smart", "adversarial.options.noise.sigma=0.3"])
    assert cfg.adversarial.build("noise").config.sigma == 0.3


@pytest.mark.parametrize("entry,message", [
    ("noise = alum_plugin_missing:GaussianNoise", "failed to load: ModuleNotFoundError"),
    ("noise = alum_plugin_bad:GaussianNoise", "is not a subclass of alum.adversarial.Method"),
    ("gauss = alum_plugin_noise:GaussianNoise", "the class's `name` is 'noise', not 'gauss'"),
])
def test_a_broken_entry_point_is_a_one_line_error_naming_it(plugin_path, entry, message):
    install(plugin_path, "alum_plugin_noise", "")
    install(plugin_path, "alum_plugin_bad", "", source="class GaussianNoise:\n    name = 'noise'\n")
    install(plugin_path, "alum_plugin_entry", entry, source="")
    name = entry.split(" = ")[0]
    with pytest.raises(UserError, match=f"entry point alum.methods '{name}' .*alum_plugin_entry 0.1.*{message}"):
        build_method(name)


def test_a_package_cannot_replace_a_built_in_method(plugin_path):
    install(plugin_path, "alum_plugin_noise",
            "smart = alum_plugin_noise:GaussianNoise\nnoise = alum_plugin_noise:GaussianNoise")
    with pytest.warns(UserWarning, match="'smart' = 'alum_plugin_noise:GaussianNoise' .* is ignored"):
        assert "noise" in METHODS
    assert METHODS["smart"].__module__ == "alum.adversarial.smoothness"
