"""`alum methods`: the registered perturbation methods and their defaults."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help="list the adversarial methods and their defaults")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from alum.adversarial import METHODS, method_defaults

    if args.json:
        print(json.dumps({name: method_defaults(name) for name in METHODS}, indent=2))
        return 0
    for name, cls in METHODS.items():
        labels = "needs labels" if cls.needs_labels else "label-free"
        print(f"{name:8s} [{labels}] {cls.summary}")
        defaults = method_defaults(name)
        if defaults:
            print("         " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    return 0
