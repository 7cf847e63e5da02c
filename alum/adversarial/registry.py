"""Methods by name: the built-in ones, and other packages' through the entry-point group `alum.methods`.

A package adds a method by declaring, in its pyproject.toml,

    [project.entry-points."alum.methods"]
    noise = "my_package.noise:GaussianNoise"

Installed packages are looked for the first time the registry is read or listed, and again whenever a name it
does not know is asked for (a package installed into a running process is then found too). A method is
imported only when it is first looked up, so a broken package fails where it is used, with its name.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, MutableMapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from alum.adversarial.base import Method
from alum.errors import UserError

GROUP = "alum.methods"


class Registry(MutableMapping):
    def __init__(self, group: str):
        self.group = group
        self._classes: dict[str, type[Method]] = {}
        self._found: dict[str, EntryPoint] = {}  # entry points not imported yet
        self._loaded: dict[str, str] = {}  # name -> the entry point's value, for the methods imported from one
        self._searched = False

    def _search(self) -> None:
        self._searched = True
        for ep in entry_points(group=self.group):
            if ep.name in self._classes:
                if self._loaded.get(ep.name) != ep.value:
                    warnings.warn(f"{self.group}: '{ep.name}' = '{ep.value}' ({_package(ep)}) is ignored: a method "
                                  f"of that name is registered already", stacklevel=3)
                continue
            self._found.setdefault(ep.name, ep)

    def _knows(self, name: str) -> bool:
        if name in self._classes or name in self._found:
            return True
        self._search()
        return name in self._found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._knows(name)

    def __getitem__(self, name: str) -> type[Method]:
        if not self._knows(name):
            raise KeyError(name)
        if name not in self._classes:
            ep = self._found.pop(name)
            self._classes[name], self._loaded[name] = _load(ep), ep.value
        return self._classes[name]

    def __setitem__(self, name: str, cls: type[Method]) -> None:
        self._classes[name] = cls
        self._found.pop(name, None)

    def __delitem__(self, name: str) -> None:
        if name not in self._classes and name not in self._found:
            raise KeyError(name)
        for known in (self._classes, self._found, self._loaded):
            known.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        if not self._searched:
            self._search()
        return iter([*self._classes, *self._found])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Registry({self.group!r}: {', '.join(self)})"


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"package {dist.name} {dist.version}" if dist is not None else "an installed package"


def _load(ep: EntryPoint) -> type[Method]:
    where = f"entry point {GROUP} '{ep.name}' = '{ep.value}' ({_package(ep)})"
    try:
        cls = ep.load()
    except Exception as exc:
        raise UserError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UserError(f"{where} is not a subclass of alum.adversarial.Method")
    if getattr(cls, "name", None) != ep.name:
        raise UserError(f"{where}: the class's `name` is {getattr(cls, 'name', None)!r}, not '{ep.name}'")
    return cls


METHODS: Registry = Registry(GROUP)


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def build_method(name: str, options: dict[str, Any] | None = None, source: str = "config",
                 prefix: str | None = None) -> Method:
    """The method `name`, configured from `options` (checked against its Config: an unknown key fails,
    named as `prefix` + key)."""
    from alum.config import from_dict

    if name not in METHODS:
        raise UserError(f"{source}: unknown method '{name}' (known: {', '.join(METHODS)})")
    cls = METHODS[name]
    prefix = f"{name}." if prefix is None else prefix
    if options and not dataclasses.fields(cls.Config):
        raise UserError(f"{source}: {prefix.rstrip('.')}: method '{name}' takes no options, but {sorted(options)} "
                        "are set")
    return cls(from_dict(cls.Config, options or {}, source=source, prefix=prefix))


def build_methods(names: list[str], options: dict[str, Any], source: str = "config",
                  grad_accum: int = 1, zero_stage: int = 0) -> dict[str, Method]:
    """The methods `names` from `adversarial.options`, a mapping from method name to that method's options,
    the same in every stage. Every entry is checked, used or not (a typo in a preset fails before any work),
    and every method named is asked whether it can run under this engine set-up."""
    if not isinstance(options, dict):
        raise UserError(f"{source}: adversarial.options: expects a mapping of method names to their options")
    for name, entry in options.items():
        if name not in METHODS:
            raise UserError(f"{source}: adversarial.options.{name}: unknown method (known: {', '.join(METHODS)})")
        if entry is not None and not isinstance(entry, dict):
            raise UserError(f"{source}: adversarial.options.{name}: expects a mapping of option names to values")
        build_method(name, entry, source, prefix=f"adversarial.options.{name}.")
    methods = {}
    for name in names:
        method = methods[name] = build_method(name, options.get(name), source, prefix=f"adversarial.options.{name}.")
        why = method.refusal(grad_accum, zero_stage)
        if why:
            raise UserError(f"{source}: {why}")
    return methods


def method_defaults(name: str) -> dict[str, Any]:
    return dataclasses.asdict(METHODS[name].Config())
