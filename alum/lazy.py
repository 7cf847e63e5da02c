"""Public names that a package loads on first use (PEP 562), so that importing the package pulls in none of
what they need: `import alum` and a stage's config schema (which imports alum.adversarial) stay free of torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: each name of `table` is taken from the module it names."""

    def __getattr__(name: str) -> Any:
        # AttributeError for any other name: `from package import submodule` then imports the submodule
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *table])

    return __getattr__, __dir__
