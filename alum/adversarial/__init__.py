"""The perturbation core shared by every stage: methods registered by name, over one interface.

    method = build_method("alum", {"alpha": 10})
    target = Target(model, forward)                  # forward(model, batch) -> ForwardOutput
    method.setup(target, total_updates)
    loss, report = method.loss(target, batch, trainer)   # the forward and the adversarial part (trainer.loss_scale)
    trainer.backward(loss); optimizer step; method.on_optimizer_step(target, update)
    # FreeLB, FreeAT, YOPO (`method.calls_backward`): report = method.step(target, batch, trainer), which calls
    # trainer.backward per pass (FreeAT: and trainer.optimizer_step per replay)

Adding a method. A method with one backward per micro-batch subclasses `SinglePass`, which runs the clean
forward, the timing, and returns `task loss + weight * term (+ extra_terms)` with the report; the method
supplies only `adversarial_term(target, batch, clean, trainer) -> (term, delta, ascent grad or None) | None`
(None drops the term for this batch, counted as skipped). `self.climb(...)` is the ascent loop every built-in
method uses: a start, an objective at delta, an update (e.g. `ascent.Rule`, any `functional.ascent_step`),
the padding mask. Another package registers its class through the entry-point group `alum.methods`:

    [project.entry-points."alum.methods"]
    noise = "my_package.noise:GaussianNoise"     # the class's `name` must be "noise"

and `--method noise`, `adversarial.options.noise.*`, `build_method("noise")` and `alum methods` then know it
(tests/unit/adversarial/test_registry.py is a complete example, in one file). Methods that run several backward
passes per batch (FreeLB, FreeAT, YOPO) implement `Method.step` themselves.

Every stage's config holds an `AdversarialConfig` (alum.adversarial.config): the methods that run, and their
options read into each method's own Config as the config loads.

The names below load on first use, so a stage's config schema imports the core without torch; the built-in
methods register themselves when the registry is first read (registry.BUILT_IN).
"""

from __future__ import annotations

from alum.lazy import lazy_names

_PUBLIC = {
    "METHODS": "alum.adversarial.registry",
    "AdversarialConfig": "alum.adversarial.config",
    "CleanPass": "alum.adversarial.base",
    "Divergence": "alum.adversarial.divergence",
    "EmbeddingPerturbation": "alum.adversarial.target",
    "ForwardOutput": "alum.adversarial.target",
    "Method": "alum.adversarial.base",
    "SinglePass": "alum.adversarial.base",
    "StepReport": "alum.adversarial.base",
    "Target": "alum.adversarial.target",
    "Trainer": "alum.adversarial.base",
    "build_method": "alum.adversarial.registry",
    "mean_reports": "alum.adversarial.base",
    "method_config": "alum.adversarial.registry",
    "method_defaults": "alum.adversarial.registry",
}
__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
