"""The perturbation core shared by every stage: methods registered by name, over one interface.

    method = build_method("alum", {"alpha": 10})
    target = Target(model, forward)                  # forward(model, batch) -> ForwardOutput
    method.setup(target, total_updates)
    report = method.step(target, batch, trainer)     # trainer.backward / trainer.optimizer_step / trainer.loss_scale

Adding a method. A method with one backward per micro-batch subclasses `SinglePass`, which runs the clean
forward, the timing, the backward of `task loss + weight * term (+ extra_terms)` and the report; the method
supplies only `adversarial_term(target, batch, clean, trainer) -> (term, delta, ascent grad or None) | None`
(None drops the term for this batch, counted as skipped). `self.climb(...)` is the ascent loop every built-in
method uses: a start, an objective at delta, an update (e.g. `ascent.Rule`, any `functional.ascent_step`),
the padding mask. Another package registers its class through the entry-point group `alum.methods`:

    [project.entry-points."alum.methods"]
    noise = "my_package.noise:GaussianNoise"     # the class's `name` must be "noise"

and `--method noise`, `adversarial.options.noise.*`, `build_method("noise")` and `alum methods` then know it
(tests/unit/adversarial/test_registry.py is a complete example, in one file). Methods that run several backward
passes per batch (FreeLB, FreeAT, YOPO) implement `Method.step` themselves.
"""

from alum.adversarial import gradient, multipass, rdrop, smoothness  # noqa: F401  (registers the methods)
from alum.adversarial.base import CleanPass, Method, SinglePass, StepReport, Trainer, mean_reports
from alum.adversarial.divergence import Divergence
from alum.adversarial.registry import METHODS, build_method, build_methods, method_defaults
from alum.adversarial.target import EmbeddingPerturbation, ForwardOutput, Target

__all__ = [
    "METHODS",
    "CleanPass",
    "Divergence",
    "EmbeddingPerturbation",
    "ForwardOutput",
    "Method",
    "SinglePass",
    "StepReport",
    "Target",
    "Trainer",
    "build_method",
    "build_methods",
    "mean_reports",
    "method_defaults",
]
