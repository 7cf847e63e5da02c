"""The package's one layering, read from the source: every `alum` import goes with the grain or down it, the
stages do not import one another, and nothing imports the stages by their bare folder names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO

# Top to bottom. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    ("cli", ["alum.cli"]),
    ("commands", ["alum.commands"]),
    ("stages", ["alum.tokenizer", "alum.pretrain", "alum.finetune"]),
    ("training", ["alum.training"]),
    ("core", ["alum.adversarial"]),
    ("base", ["alum.config", "alum.corpus", "alum.errors", "alum.presets"]),
]
STAGES = LAYERS[2][1]
# The folders setuptools maps into the package (pyproject.toml); `alum/__init__.py`, the public facade that
# loads names from every layer on first use, stands outside the layering.
FOLDERS = {"alum": "alum", "alum.tokenizer": "tokenizer", "alum.pretrain": "pretrain", "alum.finetune": "finetune"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    found.pop("alum")
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at the top or inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def owner(module: str) -> tuple[int, str] | None:
    """(layer index, the package prefix it matched) of an alum module; None outside the layering."""
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    return None


def against_the_grain() -> list[str]:
    wrong = []
    for name, path in modules().items():
        mine = owner(name)
        assert mine is not None, f"{name} is in no layer: add it to LAYERS"
        for line, target in imports(path):
            theirs = owner(target)
            if theirs is None:
                continue
            where = f"{path.relative_to(REPO)}:{line}: {name} imports {target}"
            if theirs[0] < mine[0]:
                wrong.append(f"{where} (layer '{LAYERS[mine[0]][0]}' imports '{LAYERS[theirs[0]][0]}' above it)")
            elif mine[1] in STAGES and theirs[1] in STAGES and mine[1] != theirs[1]:
                wrong.append(f"{where} (a stage imports another stage)")
    return wrong


def test_every_import_goes_with_the_grain():
    assert against_the_grain() == []


def test_the_check_sees_an_import_against_the_grain(tmp_path, monkeypatch):
    # the contract check itself: a core module that imports a stage must be reported
    fake = tmp_path / "alum" / "adversarial"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from alum.pretrain.train import run\n")
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: {"alum.adversarial.bad": fake / "bad.py"})
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert against_the_grain() == [
        "alum/adversarial/bad.py:2: alum.adversarial.bad imports alum.pretrain.train (layer 'core' imports 'stages' above it)"]


@pytest.mark.parametrize("folder", ["alum", "tokenizer", "pretrain", "finetune", "tests", "benchmarks", "experiments"])
def test_nothing_imports_a_stage_by_its_bare_name(folder):
    bare = [f"{path.relative_to(REPO)}:{line}: {target}"
            for path in sorted((REPO / folder).rglob("*.py"))
            for line, target in imports(path)
            if target.split(".")[0] in ("tokenizer", "pretrain", "finetune")]
    assert bare == []


def test_config_schemas_and_the_cli_load_without_torch():
    # a config is checked, and `alum --help` answers, before the seconds torch takes to import
    code = ("import sys, alum, alum.cli, alum.pretrain.config, alum.finetune.config, alum.tokenizer.config\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'deepspeed') if m in sys.modules)\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
