"""The package's one layering, read from the source: every module of the package that another one loads (by an
import, absolute or relative, through the facade, or by a string) sits in the importer's layer or below it,
the stages do not import one another, and nothing imports the stages by their bare folder names.
tests/support/imports.py finds the imports; the synthetic files below pin each kind it must see."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support.imports import facade, imports, modules
from support.paths import REPO

# Top to bottom. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    ("cli", ["alum.cli"]),
    ("commands", ["alum.commands"]),
    ("stages", ["alum.tokenizer", "alum.pretrain", "alum.finetune"]),
    ("training", ["alum.training"]),
    ("core", ["alum.adversarial"]),
    ("base", ["alum.config", "alum.corpus", "alum.errors", "alum.io", "alum.lazy", "alum.presets"]),
]
STAGES = LAYERS[2][1]
HOW = {"import": "", "relative": " (a relative import)", "facade": " (through the facade, alum/__init__.py)",
       "string": " (named by a string)"}


def owner(module: str) -> tuple[int, str] | None:
    """(layer index, the package prefix it matched) of an alum module; None outside the layering."""
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    return None


def within_a_layer(mine: str, theirs: str) -> str | None:
    """Why an import between two groups of one layer is wrong; None where it is allowed. The commands may
    import one another (quickstart runs the others in turn), and so may the modules of training and of the
    core, which each make one whole."""
    # The README's rule: each stage stands alone, so what two stages share belongs in a layer below them.
    if mine in STAGES and theirs in STAGES and mine != theirs:
        return "a stage imports another stage"
    # Every module of every layer imports alum.errors, most at import time: were errors to import one of its
    # own layer, that module could not import errors at its top without a cycle.
    if mine == "alum.errors" and theirs != "alum.errors":
        return "alum.errors imports another module: it stays the leaf that every layer imports"
    return None


def against_the_grain(root: Path) -> list[str]:
    """Every import of the package under `root` that breaks the layering, as `file:line: what (why)`."""
    found = modules(root)
    found.pop("alum", None)  # the facade loads names from every layer on first use: it stands outside
    public = facade(root / "alum" / "__init__.py")
    wrong = []
    for name, path in found.items():
        mine = owner(name)
        assert mine is not None, f"{name} is in no layer: add it to LAYERS"
        for line, target, kind in imports(path, name, set(found), public):
            theirs = owner(target)
            if theirs is None:
                continue
            where = f"{path.relative_to(root)}:{line}: {name} imports {target}{HOW[kind]}"
            if theirs[0] < mine[0]:
                wrong.append(f"{where} (layer '{LAYERS[mine[0]][0]}' imports '{LAYERS[theirs[0]][0]}' above it)")
            elif theirs[0] == mine[0] and (why := within_a_layer(mine[1], theirs[1])):
                wrong.append(f"{where} ({why})")
    return wrong


def test_every_import_goes_with_the_grain():
    wrong = against_the_grain(REPO)
    assert wrong == [], "\n".join(wrong)


def test_every_facade_name_comes_from_a_layered_module():
    # the check resolves `from alum import X` through this table: a name it cannot place would go unchecked
    unplaced = {name: module for name, module in facade(REPO / "alum" / "__init__.py").items()
                if module not in modules(REPO) or owner(module) is None}
    assert unplaced == {}


# One offending file per kind of import, in a tree shaped like the package's, and the one line reported.
FACADE = '_PUBLIC = {"Tuner": "alum.finetune.tuner", "Target": "alum.adversarial"}\n'
OFFENCES = {
    "absolute": ("alum/adversarial/bad.py", "def f():\n    from alum.pretrain.train import run\n",
                 "alum/adversarial/bad.py:2: alum.adversarial.bad imports alum.pretrain.train "
                 "(layer 'core' imports 'stages' above it)"),
    "relative": ("alum/training/bad.py", "from ..finetune import tuner\n",
                 "alum/training/bad.py:1: alum.training.bad imports alum.finetune.tuner (a relative import) "
                 "(layer 'training' imports 'stages' above it)"),
    "relative, two levels up from a package": (
        "alum/training/sub/__init__.py", "from ...finetune.tuner import Tuner\n",
        "alum/training/sub/__init__.py:1: alum.training.sub imports alum.finetune.tuner (a relative import) "
        "(layer 'training' imports 'stages' above it)"),
    "a submodule from its package": ("alum/training/bad.py", "from alum import finetune\n",
                                     "alum/training/bad.py:1: alum.training.bad imports alum.finetune "
                                     "(layer 'training' imports 'stages' above it)"),
    "facade name": ("alum/adversarial/bad.py", "from alum import Target, Tuner\n",
                    "alum/adversarial/bad.py:1: alum.adversarial.bad imports alum.finetune.tuner (through the "
                    "facade, alum/__init__.py) (layer 'core' imports 'stages' above it)"),
    "facade attribute": ("alum/adversarial/bad.py", "import alum\n\nTUNER = alum.Tuner\n",
                         "alum/adversarial/bad.py:3: alum.adversarial.bad imports alum.finetune.tuner (through the "
                         "facade, alum/__init__.py) (layer 'core' imports 'stages' above it)"),
    "import_module": ("alum/training/bad.py", "import importlib\nimportlib.import_module('alum.finetune.tuner')\n",
                      "alum/training/bad.py:2: alum.training.bad imports alum.finetune.tuner (named by a string) "
                      "(layer 'training' imports 'stages' above it)"),
    "import_module, relative": (
        "alum/training/bad.py", "from importlib import import_module\nimport_module('..finetune', __package__)\n",
        "alum/training/bad.py:2: alum.training.bad imports alum.finetune (named by a string) "
        "(layer 'training' imports 'stages' above it)"),
    "__import__": ("alum/training/bad.py", "__import__('alum.finetune.tuner')\n",
                   "alum/training/bad.py:1: alum.training.bad imports alum.finetune.tuner (named by a string) "
                   "(layer 'training' imports 'stages' above it)"),
    "a table of module names": ("alum/training/bad.py", "STEPS = [\n    'alum.finetune.tuner:main',\n]\n",
                                "alum/training/bad.py:2: alum.training.bad imports alum.finetune.tuner (named by a "
                                "string) (layer 'training' imports 'stages' above it)"),
    "a stage, absolute": ("finetune/bad.py", "from alum.pretrain import mlm\n",
                          "finetune/bad.py:1: alum.finetune.bad imports alum.pretrain.mlm (a stage imports another "
                          "stage)"),
    "a stage, relative": ("finetune/bad.py", "from ..pretrain.mlm import mask\n",
                          "finetune/bad.py:1: alum.finetune.bad imports alum.pretrain.mlm (a relative import) "
                          "(a stage imports another stage)"),
    "errors importing its own layer": ("alum/errors.py", "def f():\n    from .config import load\n",
                                       "alum/errors.py:2: alum.errors imports alum.config (a relative import) "
                                       "(alum.errors imports another module: it stays the leaf that every layer "
                                       "imports)"),
}


def package_tree(root: Path, extra: dict[str, str]) -> Path:
    """A small tree shaped like the package: a module in each of several layers, the facade, and `extra`."""
    files = {"alum/__init__.py": FACADE, "alum/config.py": "", "alum/errors.py": "", "alum/adversarial/__init__.py": "",
             "alum/training/__init__.py": "", "finetune/__init__.py": "", "finetune/tuner.py": "",
             "pretrain/__init__.py": "", "pretrain/mlm.py": "", "pretrain/train.py": "", **extra}
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


@pytest.mark.parametrize("kind", OFFENCES)
def test_the_check_reports_each_kind_of_import(tmp_path, kind):
    relative, source, message = OFFENCES[kind]
    assert against_the_grain(package_tree(tmp_path, {relative: source})) == [message]


def test_the_check_passes_what_goes_with_the_grain(tmp_path):
    # prose that names a module, names outside the layering, and imports down the layers or within one
    source = textwrap.dedent('''\
        """alum.finetune.tuner is described here, not imported."""
        import logging

        import alum
        from alum import Target, __version__
        from . import __name__ as _
        from .. import errors, config
        from alum.adversarial import Method

        log = logging.getLogger("alum")
        HINT = "see alum.finetune.tuner"
        TARGET = alum.Target
        ''')
    assert against_the_grain(package_tree(tmp_path, {"alum/training/good.py": source})) == []


@pytest.mark.parametrize("folder", ["alum", "tokenizer", "pretrain", "finetune", "tests", "benchmarks", "experiments"])
def test_nothing_imports_a_stage_by_its_bare_name(folder):
    # files outside the package (tests, scripts) have no package: they are read with an empty name
    bare = [f"{path.relative_to(REPO)}:{line}: {target}"
            for path in sorted((REPO / folder).rglob("*.py"))
            for line, target, _ in imports(path, "", set(), {})
            if target.split(".")[0] in ("tokenizer", "pretrain", "finetune")]
    assert bare == []


def test_config_schemas_and_the_cli_load_without_torch():
    # a config is checked, and `alum --help` answers, before the seconds torch takes to import
    code = ("import sys, alum, alum.cli, alum.pretrain.config, alum.finetune.config, alum.tokenizer.config\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'deepspeed') if m in sys.modules)\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
