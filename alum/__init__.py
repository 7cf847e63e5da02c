"""alum: adversarial pretraining (ALUM) and regularised fine-tuning (SMART) for Hugging Face encoders.

    from alum import AdversarialTrainer          # transformers.Trainer with any core method
    from alum import build_method, Target        # the perturbation core, for your own loop

The names below load on first use, so `import alum` pulls in neither torch nor a stage.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "AdversarialTrainer": "alum.training.hf_trainer",
    "METHODS": "alum.adversarial",
    "ForwardOutput": "alum.adversarial",
    "Method": "alum.adversarial",
    "StepReport": "alum.adversarial",
    "Target": "alum.adversarial",
    "Trainer": "alum.adversarial",
    "build_method": "alum.adversarial",
    "method_defaults": "alum.adversarial",
    "UserError": "alum.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'alum' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
