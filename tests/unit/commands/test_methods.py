"""`alum methods` (alum/commands/methods.py): every registered method, with its defaults."""

from __future__ import annotations

from alum.adversarial import build_method
from alum.cli import main
from alum.commands.methods import CHEAPEST


def test_cli_methods_lists_every_method_with_defaults(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ["fgsm", "fgm", "pgd", "freeat", "yopo", "freelb", "rdrop", "vat", "alum", "smart"]:
        assert f"\n{name} " in "\n" + out
    # ALUM's pretraining alpha; the sizes that survive bf16/fp16 (docs/decomposition.md), not the papers' 1e-5
    assert "alpha=10.0, sigma=0.01, step_size=0.03" in out and "constraint=project, eps=0.03" in out


def test_the_measured_recommendation_is_a_valid_zero_delta_configuration(capsys):
    """The advice printed is the configuration measured (delta exactly 0, fresh masks: the term compares two
    dropout draws, and no ascent is paid for), and a user can paste it: it builds."""
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    advice = out.strip().splitlines()[-1].split()
    assert advice[:2] == ["--method", "smart"]
    options = dict(a.removeprefix("adversarial.options.smart.").split("=") for a in advice[2:])
    method = build_method("smart", {k: float(v) if v[0].isdigit() else v == "true" for k, v in options.items()})
    assert method.delta_is_zero and not method.config.share_dropout and method.config.alpha > 0
    assert build_method(*CHEAPEST).config == method.config
