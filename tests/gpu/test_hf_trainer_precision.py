"""The transformers.Trainer drop-in (alum/training/hf_trainer.py) on a GPU with `bf16=True` (autocast) and
`fp16=True` (autocast and a GradScaler whose scale the method's ascent uses): finite losses, adversarial
terms computed, weights trained."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("accelerate")
from transformers import TrainingArguments  # noqa: E402

from alum.training.hf_trainer import AdversarialTrainer  # noqa: E402
from support.hf_trainer import Examples, tiny  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("method", ["smart", "freelb"])
def test_adversarial_trainer_trains_in_mixed_precision(tmp_path, method, precision):
    model = tiny(dropout=0.1)
    model.accepts_loss_kwargs = False  # a per-batch mean loss (support/hf_trainer.py says why)
    before = [p.detach().clone() for p in model.parameters()]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4,
                             learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to="none", seed=0,
                             disable_tqdm=True, bf16=precision == "bf16", fp16=precision == "fp16")
    trainer = AdversarialTrainer(model=model, args=args, train_dataset=Examples(), adversarial=method)
    trainer.train()

    assert next(model.parameters()).is_cuda
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert len(logs) == 4 and all(math.isfinite(log["loss"]) for log in logs)
    assert all(math.isfinite(log["adv_loss"]) for log in logs if "adv_loss" in log)
    assert logs[-1]["adv_skipped"] < 4  # some adversarial terms were computed, not all skipped
    if precision == "fp16":
        assert trainer.accelerator.scaler is not None  # the scale the method's ascent was lent
    assert any(not torch.equal(a, b.detach().cpu()) for a, b in zip(before, model.parameters()))
