"""alum: adversarial pretraining (ALUM) and regularised fine-tuning (SMART) for Hugging Face encoders.

    from alum import AdversarialTrainer          # transformers.Trainer with any core method
    from alum import build_method, Target        # the perturbation core, for your own loop

The names below load on first use, so `import alum` pulls in neither torch nor a stage.
"""

from __future__ import annotations

from alum.lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
