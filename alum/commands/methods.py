"""`alum methods`: the registered perturbation methods and their defaults."""

from __future__ import annotations

import json

# What docs/decomposition.md measured (MiniLM fine-tuned on SST-2, MRPC and CoLA, float32, 5 seeds each,
# compared seed by seed): no measurable part of SMART's gain over plain fine-tuning came from delta. At delta
# exactly 0 its term compares two dropout draws beside the momentum teacher; that kept the gain at the lowest
# cost, and the teacher alone kept part of it (MRPC's clean gain, SST-2's attacked one).
CHEAPEST = ("smart", {"step_size": 0.0, "sigma": 0.0, "share_dropout": False})
MEASURED = ("Measured with MiniLM on SST-2, MRPC and CoLA (docs/decomposition.md, 5 seeds each): no measurable "
            "part of SMART's gain over none came from delta. Its teacher alone (alpha=0, 1.4-1.5x a plain step) "
            "kept part of it; the cheapest configuration that kept it all (above none under attack on 13 seeds "
            "of 15), at 2.1-2.5x a plain step against 2.7-3.9x for SMART as released:")


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
