"""Every module of the package that a source file loads, read from its syntax tree: plain imports, relative
ones (resolved against the file's own package), names taken from the facade (`from alum import X` and
`alum.X` load X's own module, which the facade's table names), and imports by a string literal
(`importlib.import_module("alum.x")`, `__import__`, and tables of module names such as the CLI's list of
subcommand modules, which it imports through a variable)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

# The folders setuptools maps into the package (pyproject.toml).
FOLDERS = {"alum": "alum", "alum.tokenizer": "tokenizer", "alum.pretrain": "pretrain", "alum.finetune": "finetune"}
# The calls that import the module their first argument names.
LOADERS = {"import_module", "__import__"}


class Import(NamedTuple):
    line: int
    target: str  # the module loaded
    kind: str  # "import", "relative", "facade", "string"


def modules(repo: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name, with its file (a package by its __init__.py)."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(repo / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def facade(init: Path) -> dict[str, str]:
    """The facade's table (`_PUBLIC` in alum/__init__.py): each public name and the module that defines it."""
    for node in ast.walk(ast.parse(init.read_text(), str(init))):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_PUBLIC" for t in targets):
                return {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError(f"{init}: no _PUBLIC table; the layering test reads the facade's names from it")


def package_of(module: str, path: Path) -> str:
    """The package a relative import in this file starts from: the module itself for an __init__.py."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def resolve(name: str, level: int, package: str) -> str | None:
    """`name` imported with `level` leading dots from `package`; None where the dots climb out of the top, or
    the file is in no package (a script or a test: its relative imports are not the package's)."""
    if level == 0:
        return name
    if not package:
        return None
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def imports(path: Path, module: str, known: set[str], public: dict[str, str]) -> list[Import]:
    """Every module of the package (in `known`) that `path`, the file of `module`, loads; `public` is the
    facade's table. Imports inside functions count: a lazy import is still a dependency."""
    package = package_of(module, path)
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name, "import") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module or "", node.level, package)
            if base is None:
                continue
            kind = "relative" if node.level else "import"
            for alias in node.names:
                found.append(Import(node.lineno, *_member(base, alias.name, kind, known, public)))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "alum":
            if node.attr in public:  # `import alum` then `alum.AdversarialTrainer`: the facade loads it
                found.append(Import(node.lineno, public[node.attr], "facade"))
        elif isinstance(node, ast.Call) and _loader(node.func) and node.args:
            target = _string_target(node, module, package)
            if target:
                found.append(Import(node.lineno, target, "string"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # a table of module names, imported later through a variable ("module" or "module:attribute",
            # as an entry point writes it); only an exact name of a module counts, never prose
            name = node.value.partition(":")[0]
            if name in known:
                found.append(Import(node.lineno, name, "string"))
    return sorted(set(found))


def _member(base: str, name: str, kind: str, known: set[str], public: dict[str, str]) -> tuple[str, str]:
    """What `from base import name` loads: a submodule of that name, the defining module of a facade name,
    or else `base` itself."""
    if f"{base}.{name}" in known:
        return f"{base}.{name}", kind
    if base == "alum" and name in public:
        return public[name], "facade"
    return base, kind


def _loader(func: ast.expr) -> str | None:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name if name in LOADERS else None


def _string_target(call: ast.Call, module: str, package: str) -> str | None:
    """The module a loader call names by a literal: absolute, or (import_module only; `__import__` takes its
    level apart) relative to its literal `package`, or to the file's `__package__` or `__name__`."""
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    name = first.value
    if not name.startswith("."):
        return name
    if _loader(call.func) != "import_module":
        return None
    anchor = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "package"), None)
    if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
        package = anchor.value
    elif isinstance(anchor, ast.Name) and anchor.id in ("__package__", "__name__"):
        package = package if anchor.id == "__package__" else module
    else:
        return None
    level = len(name) - len(name.lstrip("."))
    return resolve(name[level:], level, package)
