"""Typed YAML configs: dataclass schemas, `key.sub=value` overrides, one-line errors naming the key.

A stage declares its config as nested dataclasses; `load_config` reads a YAML file, applies command-line
overrides, and checks every key and type against the schema, so a typo fails before any work starts.

Two class attributes of a section shape how its keys are read:

    RETIRED = {"old_key": "what to write instead"}   an old key is refused with that advice, not a guess
    ALTERNATIVES = (("a", "b"),)                      keys of which one is set at a time: one given on the
                                                      command line replaces the other from the file

A field whose schema is not a type (options keyed by a name that decides their own schema) is annotated with
the function that reads it: `options: Annotated[dict[str, Any], Reader(read_options)]`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

import yaml

from alum.errors import UserError
from alum.presets import preset

T = TypeVar("T")


class Reader(NamedTuple):
    """`Annotated[T, Reader(read)]`: the field's value is read by `read(value, source, key)`, which returns it
    typed or raises UserError("<source>: ... <key> ..."), as the schema's own types are read."""

    read: Callable[[Any, str, str], Any]


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                flags: dict[str, Any] | None = None, kind: str | None = None) -> T:
    """Read `path` (YAML, optional; with `kind`, a shipped preset's name too), apply `overrides`
    ("a.b=value", the value parsed as YAML), then `flags` ({"a.b": value}, taken as they are), and validate
    the result against `schema`."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        if kind is not None:
            path = preset(kind, path)
        source = str(path)
        data = read_yaml(path)
    given: set[str] = set()
    for key, value in [*map(parse_override, overrides or []), *(flags or {}).items()]:
        set_dotted(data, key, value)
        given.add(key)
        _drop_alternatives(schema, data, key, given)
    if overrides or flags:
        source += " (with command-line overrides)"
    return from_dict(schema, data, source=source)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: a directory, not a config file")
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: config is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _drop_alternatives(schema: type, data: dict[str, Any], key: str, given: set[str]) -> None:
    """`key` was set on the command line: its alternatives (the section's ALTERNATIVES) that came from the file
    give way. Both given on the command line stay, for the section's check to refuse."""
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        hint = typing.get_type_hints(schema).get(part) if dataclasses.is_dataclass(schema) else None
        if not dataclasses.is_dataclass(hint) or not isinstance(node.get(part), dict):
            return
        schema, node = hint, node[part]
    for group in getattr(schema, "ALTERNATIVES", ()):
        if leaf in group:
            for other in group:
                if other != leaf and ".".join([*parents, other]) not in given:
                    node.pop(other, None)


def from_dict(schema: type[T], data: Any, source: str = "config", prefix: str = "") -> T:
    """Build dataclass `schema` from plain data, raising UserError("<source>: ... '<key>' ...") on mismatch."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: key '{prefix.rstrip('.') or '<root>'}' expects a mapping, got {_show(data)}")
    hints = typing.get_type_hints(schema, include_extras=True)  # with the Readers of Annotated fields
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        retired = getattr(schema, "RETIRED", {}).get(key)
        if retired:
            raise UserError(f"{source}: key '{prefix}{key}' is retired: {retired}")
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
        raise UserError(f"{source}: unknown key '{prefix}{key}'{hint}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, source, f"{prefix}{name}")
    try:
        config = schema(**values)
    except TypeError as err:  # a required field without a default
        raise UserError(f"{source}: {err}") from None
    check = getattr(config, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as err:  # a section's check may name its keys in full already ("data.block_size")
            message = str(err)
            raise UserError(f"{source}: {message if message.startswith(prefix) else prefix + message}") from None
    return config


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        reader = next((a for a in args[1:] if isinstance(a, Reader)), None)
        return reader.read(value, source, key) if reader else _coerce(args[0], value, source, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, source, key)
            except UserError as err:
                errors.append(err)
        raise UserError(f"{source}: key '{key}' expects {_name(hint)}, got {_show(value)}")
    if origin is Literal:
        if value in args:
            return value
        raise UserError(f"{source}: key '{key}' must be one of {', '.join(map(str, args))}; got {_show(value)}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, source, prefix=f"{key}.")
    if origin in (list, tuple):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # a single value where a list is expected: `files=a.txt`
        if not isinstance(value, list | tuple):
            raise UserError(f"{source}: key '{key}' expects a list, got {_show(value)}")
        item = args[0] if args else Any
        return [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: key '{key}' expects a mapping, got {_show(value)}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
            return int(value)  # "1e4" steps
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    else:
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    raise UserError(f"{source}: key '{key}' expects {_name(hint)}, got {_show(value)}")


def _name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_name(a) for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is Literal:  # `Literal[...] | None`: the choices, not the word "Literal"
        return "one of " + ", ".join(map(str, get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(dump_yaml(config), encoding="utf-8")
