"""`alum methods` (alum/commands/methods.py): every registered method, with its defaults."""

from __future__ import annotations

from alum.cli import main


def test_cli_methods_lists_every_method_with_defaults(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ["fgsm", "fgm", "pgd", "freeat", "yopo", "freelb", "rdrop", "vat", "alum", "smart"]:
        assert f"\n{name} " in "\n" + out
    # ALUM's pretraining alpha; the sizes that survive bf16/fp16 (docs/decomposition.md), not the papers' 1e-5
    assert "alpha=10.0, sigma=0.01, step_size=0.03" in out and "constraint=project, eps=0.03" in out
