"""The `adversarial` section of every stage's config: the methods that run, and each method's options typed by
that method's own Config (the method's dataclass is the schema). Every entry of `options` is read and checked
once, when the config loads; a method is then built from its typed options, which are not read again.

This module loads without torch (a config is checked, and `alum --help` answers, before the seconds torch
takes): the registry, and the methods with it, are imported when a config is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from alum.config import Reader
from alum.errors import UserError

if TYPE_CHECKING:
    from alum.adversarial.base import Method


def read_options(value: Any, source: str, key: str) -> dict[str, Any]:
    """`adversarial.options`, a mapping from method name to that method's options, as a mapping from name to
    the method's Config. Every entry is read, whether its method runs or not: a typo in a preset fails
    before any work, and switching the method keeps the preset valid."""
    from alum.adversarial.registry import METHODS, method_config

    if not isinstance(value, dict):
        raise UserError(f"{source}: {key}: expects a mapping of method names to their options")
    for name in value:
        if name not in METHODS:
            raise UserError(f"{source}: {key}.{name}: unknown method (known: {', '.join(METHODS)})")
    return {name: method_config(name, entry, source, prefix=f"{key}.{name}.") for name, entry in value.items()}


@dataclass
class AdversarialConfig:
    """Each stage subclasses it for its own default method (pretraining for its schedule too)."""

    # A core method (`alum methods` lists them). A stage that compares methods takes several: a list, or the
    # names separated by commas.
    method: str | list[str] = "none"
    # Options per method name, e.g. {smart: {alpha: 1.0}, alum: {alpha: 1.0}, pgd: {eps: 1.0}}; each entry
    # becomes its method's Config as the config loads, and the methods that run get one with their defaults
    # if none is given, so the resolved config shows every option a run uses.
    options: Annotated[dict[str, Any], Reader(read_options)] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        names = self.method.split(",") if isinstance(self.method, str) else self.method
        return [name.strip() for name in names if name.strip()]

    def validate(self) -> None:
        from alum.adversarial.registry import METHODS, method_config

        if not self.methods:
            raise ValueError("method: name at least one method")
        for name in self.methods:
            if name not in METHODS:
                raise ValueError(f"method: unknown method '{name}' (known: {', '.join(METHODS)})")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("method: a method is listed twice")
        for name in self.methods:
            self.options.setdefault(name, method_config(name))

    def build(self, name: str) -> Method:
        """The method `name` from its entry of `options` (typed when the config loaded; an entry set in code
        since, as a mapping, is read now)."""
        from alum.adversarial.registry import build_method

        return build_method(name, self.options.get(name), prefix=f"adversarial.options.{name}.")

    def refusal(self, grad_accum: int, zero_stage: int) -> str | None:
        """Why a method that runs cannot train under this engine set-up (`Method.refusal`), or None. The stage's
        config asks, as it loads: the engine is in sections of its own."""
        for name in self.methods:
            why = self.build(name).refusal(grad_accum, zero_stage)
            if why:
                return why
        return None

