"""A regular (non-editable) install works away from the checkout: `pip install .` into a fresh environment
ships one import package with its presets and samples, and `alum quickstart` runs from an empty directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support.paths import REPO
from support.processes import environment

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: int = 600) -> str:
    # without the launcher's variables an earlier in-process run left (its port is still held here)
    env = environment(drop=("PYTHONPATH", "VIRTUAL_ENV"), PIP_NO_INDEX="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
                      PYTHONNOUSERSITE="1")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding a regular install of this checkout. Its dependencies come from the test's own
    environment through a path entry (no network), which leaves out that environment's editable alum."""
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # Built from a copy, so the checkout gets no build/ directory; the fresh interpreter runs pip (found
    # through that path entry), so the console script is its own.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", "wandb"))
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         str(source)], root)
    return venv


def test_a_regular_install_is_one_package_with_its_presets_and_samples(installed):
    site = Path(sysconfig.get_path("purelib", vars={"base": str(installed), "platbase": str(installed)}))
    top = sorted(p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__")))
    assert top == ["alum"]  # no `tokenizer`, `pretrain` or `finetune` to clash with other distributions
    assert (site / "alum" / "configs" / "pretrain" / "tiny.yaml").is_file()
    assert (site / "alum" / "data" / "glue" / "SST-2" / "dev.tsv").is_file()
    for stage in ("tokenizer", "pretrain", "finetune"):  # each stage's README ships with it
        assert (site / "alum" / stage / "README.md").is_file(), stage
    empty = installed.parent / "elsewhere"
    empty.mkdir()
    out = run([str(installed / "bin" / "python"), "-c",
               "import alum, alum.pretrain.train, alum.finetune.run, alum.training.hf_trainer, alum.tokenizer.train\n"
               "from alum.presets import preset\n"
               "print(alum.__file__, preset('finetune', 'sst2'))"], empty)
    assert out.split() == [str(site / "alum" / "__init__.py"), str(site / "alum" / "configs" / "finetune" / "sst2.yaml")]


def test_quickstart_runs_from_an_empty_directory(installed):
    empty = installed.parent / "empty"
    empty.mkdir()
    out = run([str(installed / "bin" / "alum"), "quickstart", "--pretrain-steps", "4", "--finetune-epochs", "1"],
              empty, timeout=900)
    assert "alum quickstart: done" in out
    assert (empty / "runs" / "quickstart" / "finetune" / "best" / "config.json").is_file()
