"""The presets and samples that ship inside the package (`alum.configs`, `alum.data`), found by name or path.

    preset("pretrain", "tiny")                    -> .../configs/pretrain/tiny.yaml
    preset("pretrain", "configs/pretrain/x.yaml") -> that path, as given
    sample("glue/SST-2/dev.tsv")                  -> .../data/glue/SST-2/dev.tsv

They resolve through the installed package, so they work from a checkout, an editable install and a regular
one alike.
"""

from __future__ import annotations

from pathlib import Path

from alum.errors import UserError

KINDS = {"tokenizer": ".yaml", "pretrain": ".yaml", "finetune": ".yaml", "deepspeed": ".json"}


def _root(package: str) -> Path:
    import importlib

    return Path(importlib.import_module(package).__file__).parent


def names(kind: str) -> list[str]:
    return sorted(p.stem for p in (_root("alum.configs") / kind).glob(f"*{KINDS[kind]}"))


def preset(kind: str, value: str | Path, key: str = "--config") -> Path:
    """`value` as a path when it looks like one (a suffix or a folder in it) or exists; otherwise the
    shipped preset of that name. `key` names the flag or config key in the error."""
    text = str(value)
    path = Path(text)
    if path.suffix or "/" in text or "\\" in text or path.exists():
        return path
    found = _root("alum.configs") / kind / f"{text}{KINDS[kind]}"
    if found.is_file():
        return found
    raise UserError(f"{key} {text}: neither a file nor a {kind} preset (presets: {', '.join(names(kind))})")


def sample(relative: str) -> Path:
    return _root("alum.data") / relative


def data_file(value: str | Path) -> Path:
    """`value` as given when it exists; else, for a relative `data/...` path (as the shipped presets write
    them), the sample shipped with the package: the presets then work from any working directory."""
    path = Path(value)
    if path.exists() or path.is_absolute() or path.parts[:1] != ("data",):
        return path
    shipped = sample(Path(*path.parts[1:]).as_posix()) if len(path.parts) > 1 else path
    return shipped if shipped.exists() else path
