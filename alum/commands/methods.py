"""`alum methods`: the registered perturbation methods and their defaults."""

from __future__ import annotations

import json

# What docs/decomposition.md measured (MiniLM fine-tuned on SST-2, float32, 5 seeds): SMART's gain over plain
# fine-tuning did not come from delta. At delta exactly 0 its term compares two dropout draws beside the
# momentum teacher; that kept the whole gain at the lowest cost, and the teacher alone kept the attacked part.
CHEAPEST = ("smart", {"step_size": 0.0, "sigma": 0.0, "share_dropout": False})
MEASURED = ("Measured on SST-2 with MiniLM (docs/decomposition.md, 5 seeds): SMART's gain over none (+1.1 points "
            "clean, +1.0 under attack) did not come from delta. Its teacher alone (alpha=0, 1.5x a plain step) "
            "kept the attacked gain; the cheapest configuration that kept both, at 2.1-2.5x a plain step "
            "against 2.7-3.9x for SMART as released:")


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
