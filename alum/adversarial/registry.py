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
import importlib
import warnings
from collections.abc import Iterator, MutableMapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from alum.adversarial.base import Method
from alum.errors import UserError

GROUP = "alum.methods"
# The methods that ship with alum. Each module registers its classes as it loads, and they load when the
# registry is first read rather than when alum.adversarial is imported: a stage's config schema imports the
# core's AdversarialConfig without paying for torch, which the methods need.
BUILT_IN = ("alum.adversarial.gradient", "alum.adversarial.multipass", "alum.adversarial.rdrop",
            "alum.adversarial.smoothness")


class Registry(MutableMapping):
    def __init__(self, group: str, built_in: tuple[str, ...] = ()):
        self.group, self.built_in = group, built_in  # built_in: modules that register methods as they load
        self._classes: dict[str, type[Method]] = {}
        self._found: dict[str, EntryPoint] = {}  # entry points not imported yet
        self._loaded: dict[str, str] = {}  # name -> the entry point's value, for the methods imported from one
        self._searched = False
        self._built_in_loaded = False

    def _load_built_in(self) -> None:
        if not self._built_in_loaded:
            self._built_in_loaded = True  # first: the modules' own register() calls come back here
            for module in self.built_in:
                importlib.import_module(module)

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
        self._load_built_in()
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
        self._load_built_in()  # a built-in name stays the built-in's, whoever registers first
        self._classes[name] = cls
        self._found.pop(name, None)

    def __delitem__(self, name: str) -> None:
        if name not in self._classes and name not in self._found:
            raise KeyError(name)
        for known in (self._classes, self._found, self._loaded):
            known.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        self._load_built_in()
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


METHODS: Registry = Registry(GROUP, BUILT_IN)


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def method_config(name: str, options: Any = None, source: str = "config", prefix: str | None = None) -> Any:
    """The options of method `name` as its own Config (the method's dataclass is the schema): a mapping read
    and checked against it (an unknown key fails, named as `prefix` + key), None for the defaults, or a Config
    already read, taken as it is."""
    from alum.config import from_dict

    if name not in METHODS:
        raise UserError(f"{source}: unknown method '{name}' (known: {', '.join(METHODS)})")
    cls = METHODS[name]
    if isinstance(options, cls.Config):
        return options
    prefix = f"{name}." if prefix is None else prefix
    if options is not None and not isinstance(options, dict):
        raise UserError(f"{source}: {prefix.rstrip('.')}: expects a mapping of option names to values")
    if options and not dataclasses.fields(cls.Config):
        raise UserError(f"{source}: {prefix.rstrip('.')}: method '{name}' takes no options, but {sorted(options)} "
                        "are set")
    return from_dict(cls.Config, options or {}, source=source, prefix=prefix)


def build_method(name: str, options: Any = None, source: str = "config", prefix: str | None = None) -> Method:
    """The method `name`, configured from `options` (anything `method_config` takes)."""
    config = method_config(name, options, source, prefix)  # first: an unknown name is a one-line error
    return METHODS[name](config)


def method_defaults(name: str) -> dict[str, Any]:
    return dataclasses.asdict(METHODS[name].Config())
