"""What a pretrained model's card says (alum/io/model_card.py lays it out): where the model started, the
corpus, the steps and the masked-LM/adversarial schedule, and the last validation figures of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alum.config import to_dict
from alum.io.model_card import ModelCard, bullets, code, figure, size, weights_summary, yaml_block
from alum.training.metrics import read_metrics
from alum.pretrain.config import PretrainConfig


def pretrain_card(cfg: PretrainConfig, directory: Path, step: int, run: Path) -> ModelCard:
    """The card of the model saved in `directory`: the run `run` (its config `cfg`) at `step`."""
    family, parameters = weights_summary(directory)
    method = cfg.adversarial.methods[0]
    switch = cfg.max_steps if method == "none" else cfg.switch_step()
    if cfg.model.path:
        start = {"path": code(cfg.model.path), "family": family}
    else:
        start = {"from scratch": f"the `{cfg.model.preset}` shape, {family}", **(
            {"config overrides": cfg.model.overrides} if cfg.model.overrides else {})}
    corpus = cfg.data.prepared or ", ".join(cfg.data.files)
    if switch >= cfg.max_steps:
        schedule = [f"Masked LM for all {cfg.max_steps} steps (no adversarial phase)."]
    else:
        schedule = [f"Masked LM for steps 1-{switch}, then `{method}` for steps {switch + 1}-{cfg.max_steps} "
                    f"({cfg.adversarial.start_key}), with these options (`adversarial.options.{method}`):", "",
                    *yaml_block(to_dict(cfg)["adversarial"]["options"].get(method) or {})]
    validation = last_validation(run / "metrics.jsonl", step)
    sections = [
        ("Model", bullets({**start, "size": size(parameters)})),
        ("Corpus", bullets({"files": code(corpus), "tokenizer": code(str(cfg.data.tokenizer)),
                            "block size": cfg.data.block_size, "masking": f"{cfg.masking.probability} of the tokens"
                            f"{', whole words' if cfg.masking.whole_word else ''}"})),
        ("Schedule", [f"This model is the run's weights at step {step} of {cfg.max_steps}.", "", *schedule]),
        ("Validation", bullets({k: figure(v) for k, v in validation.items()}) if validation
         else ["No validation figures were recorded up to this step."]),
        ("Run", bullets({"run directory": code(str(run)), "learning rate": cfg.optim.lr,
                         "micro-batch": cfg.engine.micro_batch_size, "gradient accumulation": cfg.engine.grad_accum,
                         "seed": cfg.seed})),
    ]
    phase = "masked LM only" if switch >= cfg.max_steps else f"masked LM, then {method}"
    return ModelCard(title=f"A {family} masked-LM model pretrained with alum ({phase})", pipeline_tag="fill-mask",
                     tags=["alum", method], sections=sections)


def last_validation(log: Path, step: int) -> dict[str, Any]:
    """The last validation record (`val_*`) of the run's log at or before `step`, with its step; {} if none."""
    if not log.is_file():
        return {}
    found: dict[str, Any] = {}
    for record in read_metrics(log):
        if record.get("step", 0) <= step and any(k.startswith("val_") for k in record):
            found = {"step": record["step"], **{k: v for k, v in record.items() if k.startswith("val_")}}
    return found
