"""The perturbation core shared by every stage: methods registered by name, over one interface.

    method = build_method("alum", {"alpha": 10})
    target = Target(model, forward)                  # forward(model, batch) -> ForwardOutput
    method.setup(target, total_updates)
    report = method.step(target, batch, trainer)     # trainer.backward / trainer.optimizer_step
"""

from alum.adversarial import gradient, multipass, smoothness  # noqa: F401  (registers the methods)
from alum.adversarial.base import METHODS, Method, StepReport, Trainer, build_method, build_methods, method_defaults
from alum.adversarial.target import EmbeddingPerturbation, ForwardOutput, Target

__all__ = [
    "METHODS",
    "EmbeddingPerturbation",
    "ForwardOutput",
    "Method",
    "StepReport",
    "Target",
    "Trainer",
    "build_method",
    "build_methods",
    "method_defaults",
]
