"""`alum methods`: the registered perturbation methods and their defaults."""

from __future__ import annotations

import json

# What docs/decomposition.md measured (MiniLM fine-tuned on SST-2, float32): SMART's gain over plain fine-tuning
# did not come from delta. At delta exactly 0 its term compares two dropout draws, beside the momentum teacher;
# that kept the gain at the lowest cost of the arms measured, and neither part alone (R-Drop; the teacher) did.
CHEAPEST = ("smart", {"step_size": 0.0, "sigma": 0.0, "share_dropout": False})
MEASURED = ("Measured on SST-2 with MiniLM (docs/decomposition.md): SMART's fine-tuning gain over none came "
            "from its two dropout draws and its momentum teacher, not from delta; the cheapest configuration "
            "that kept it, at 2.05x a plain step (2.7-2.9x with delta):")


def cheapest_line() -> str:
    name, options = CHEAPEST
    return f"--method {name} " + " ".join(
        f"adversarial.options.{name}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items())


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
    print(f"\n{MEASURED}\n  {cheapest_line()}")
    return 0
