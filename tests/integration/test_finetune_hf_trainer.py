"""The transformers.Trainer drop-in: `none` through it is the plain Trainer exactly (so the lent backward
respects gradient accumulation), SMART trains and moves its teacher, and FreeAT is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")  # transformers.Trainer needs it

from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

from alum.errors import UserError  # noqa: E402
from alum.finetune.hf_trainer import AdversarialTrainer  # noqa: E402


class Examples(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, length: int = 10):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 90, (n, length), generator=g)
        self.mask = torch.ones_like(self.ids)
        self.mask[::2, 7:] = 0  # every other example padded
        self.ids[self.mask == 0] = 0
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def tiny(dropout: float = 0.0):
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=2, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))


def arguments(tmp_path, **extra):
    return TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             max_steps=3, learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to="none",
                             use_cpu=True, seed=0, data_seed=0, disable_tqdm=True, **extra)


def trained(cls, tmp_path, **kwargs):
    model = tiny()
    # transformers 5 takes any model whose forward has **kwargs for one that normalises its loss over the
    # accumulated batch and then skips the division by the accumulation steps; BERT's classification loss
    # is a plain per-batch mean, so the plain Trainer would sum the micro-batches. Say what is true.
    model.accepts_loss_kwargs = False
    trainer = cls(model=model, args=arguments(tmp_path), train_dataset=Examples(), **kwargs)
    trainer.train()
    return trainer, model


def test_none_through_the_drop_in_is_the_plain_trainer(tmp_path):
    _, plain = trained(Trainer, tmp_path / "plain")
    _, ours = trained(AdversarialTrainer, tmp_path / "ours", adversarial="none")
    for (name, a), b in zip(plain.state_dict().items(), ours.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    assert not torch.equal(plain.classifier.weight, tiny().classifier.weight)  # and training did happen


def test_smart_trains_moves_its_teacher_and_logs_its_term(tmp_path):
    trainer, model = trained(AdversarialTrainer, tmp_path, adversarial="smart",
                             adversarial_options={"constraint": "project", "eps": 0.05})
    teacher = trainer.method.teacher.model
    start = tiny()
    assert not torch.equal(teacher.classifier.weight, start.classifier.weight)  # the EMA moved
    assert not torch.equal(teacher.classifier.weight, model.classifier.weight)  # but lags the student
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(h["adv_loss"] > 0 and h["delta_norm"] > 0 for h in logs)


def test_single_pass_adversarial_term_changes_the_update(tmp_path):
    _, plain = trained(AdversarialTrainer, tmp_path / "none", adversarial="none")
    _, fgm = trained(AdversarialTrainer, tmp_path / "fgm", adversarial="fgm", adversarial_options={"eps": 0.5})
    assert not torch.allclose(plain.classifier.weight, fgm.classifier.weight)


def test_the_amp_loss_scale_is_lent_to_the_method(tmp_path):
    """Under fp16 the backward the method is lent scales the loss by the Trainer's GradScaler, so the method
    is told that scale (fp16 autocast needs a GPU: the scaler is set by hand here)."""
    from alum.finetune.hf_trainer import _Backward

    trainer = AdversarialTrainer(model=tiny(), args=arguments(tmp_path), train_dataset=Examples(), adversarial="fgm")
    assert trainer.accelerator.scaler is None and _Backward(trainer).loss_scale() == 1.0
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    assert _Backward(trainer).loss_scale() == 256.0


def test_freeat_is_refused_with_a_reason(tmp_path):
    with pytest.raises(UserError, match="freeat.*takes an optimizer step on every replay"):
        AdversarialTrainer(model=tiny(), args=arguments(tmp_path), train_dataset=Examples(), adversarial="freeat")


def test_cut_passes_train_under_ddp_as_without_it(tmp_path):
    # ALUM and SMART cut their perturbed passes below the embeddings; under the Trainer's DDP (which finds
    # unused parameters by default) those passes must not be DDP forwards, or the embeddings are marked
    # ready twice. With one process DDP averages over one rank, so the weights must match the plain run.
    port = str(29500 + os.getpid() % 1000)
    results = {}
    for mode in ("plain", "ddp"):
        out = tmp_path / mode
        out.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("hf_trainer_ddp_worker.py")), str(out), mode],
                              cwd=Path(__file__).resolve().parents[2], env={**env, "MASTER_PORT": port},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        results[mode] = torch.load(out / "results.pt")
    for name in ("alum", "smart"):
        assert results["ddp"][name]["wrapper"] == "DistributedDataParallel"
        assert results["plain"][name]["wrapper"] != "DistributedDataParallel"
        for key, plain in results["plain"][name]["weights"].items():
            assert torch.allclose(plain, results["ddp"][name]["weights"][key], atol=1e-6, rtol=0), (name, key)
