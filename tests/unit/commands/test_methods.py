"""`alum methods` (alum/commands/methods.py): every registered method, with its defaults."""

from __future__ import annotations

from alum.cli import main


def test_cli_methods_lists_every_method_with_defaults(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ["fgsm", "fgm", "pgd", "freeat", "yopo", "freelb", "vat", "alum", "smart"]:
        assert f"\n{name} " in "\n" + out
    assert "alpha=10.0" in out and "sigma=1e-05" in out
