"""The transformers.Trainer drop-in: `none` through it is the plain Trainer exactly (so the lent backward
respects gradient accumulation), SMART trains and moves its teacher, and FreeAT is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")  # transformers.Trainer needs it

from transformers import Trainer, TrainerCallback  # noqa: E402

from alum.errors import UserError  # noqa: E402
from alum.training.hf_trainer import METHOD_STATE, AdversarialTrainer  # noqa: E402
from support.hf_trainer import Examples, arguments, tiny, trained  # noqa: E402
from support.paths import REPO  # noqa: E402
from support.pretrain import assert_same_state  # noqa: E402
from support.processes import environment, free_port  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert all(h["delta_effective"] > 0 and h["delta_cosine"] > 0.99 for h in logs)  # what reached the model


def test_single_pass_adversarial_term_changes_the_update(tmp_path):
    _, plain = trained(AdversarialTrainer, tmp_path / "none", adversarial="none")
    _, fgm = trained(AdversarialTrainer, tmp_path / "fgm", adversarial="fgm", adversarial_options={"eps": 0.5})
    assert not torch.allclose(plain.classifier.weight, fgm.classifier.weight)


def test_the_amp_loss_scale_is_lent_to_the_method(tmp_path):
    """Under fp16 the backward the method is lent scales the loss by the Trainer's GradScaler, so the method
    is told that scale (fp16 autocast needs a GPU: the scaler is set by hand here)."""
    from alum.training.hf_trainer import _Backward

    trainer = AdversarialTrainer(model=tiny(), args=arguments(tmp_path), train_dataset=Examples(), adversarial="fgm")
    assert trainer.accelerator.scaler is None and _Backward(trainer).loss_scale() == 1.0
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    assert _Backward(trainer).loss_scale() == 256.0


class StopAt(TrainerCallback):
    """Ends training after update `step` with a checkpoint, as a job killed right after saving would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = control.should_training_stop = True


def test_the_method_state_travels_in_checkpoints_and_resumes_bit_identical(tmp_path):
    """SMART's teacher and skipped count: a run stopped at update 10 of 20 and resumed from its checkpoint ends
    as the uninterrupted run, to the bit: weights, the teacher's weights and its 20 counted updates."""
    def trainer(out, *callbacks):
        model = tiny(dropout=0.1)  # dropout: the random streams must come back too
        model.accepts_loss_kwargs = False  # as in support.hf_trainer.trained
        return AdversarialTrainer(model=model, args=arguments(out, max_steps=20, save_strategy="no"),
                                  train_dataset=Examples(), callbacks=list(callbacks), adversarial="smart",
                                  adversarial_options={"constraint": "project", "eps": 0.05})

    whole = trainer(tmp_path / "whole")
    whole.train()
    stopped = trainer(tmp_path / "parts", StopAt(10))
    stopped.train()
    assert stopped.state.global_step == 10 and stopped.method.teacher.updates == 10
    checkpoint = tmp_path / "parts" / "checkpoint-10"
    resumed = trainer(tmp_path / "parts")
    resumed.train(resume_from_checkpoint=str(checkpoint))

    assert resumed.method.teacher.updates == whole.method.teacher.updates == 20
    assert_same_state(resumed.method.state_dict(), whole.method.state_dict())
    assert_same_state(resumed.model.state_dict(), whole.model.state_dict())

    (checkpoint / METHOD_STATE).unlink()  # a checkpoint the plain Trainer wrote: SMART cannot resume from it
    with pytest.raises(UserError, match=f"checkpoint-10: no {METHOD_STATE} .*'smart' cannot resume its state"):
        trainer(tmp_path / "parts").train(resume_from_checkpoint=str(checkpoint))


def test_freeat_is_refused_with_a_reason(tmp_path):
    with pytest.raises(UserError, match="freeat.*takes an optimizer step on every replay"):
        AdversarialTrainer(model=tiny(), args=arguments(tmp_path), train_dataset=Examples(), adversarial="freeat")


def test_cut_passes_train_under_ddp_as_without_it(tmp_path):
    # ALUM and SMART cut their perturbed passes below the embeddings; under the Trainer's DDP (which finds
    # unused parameters by default) those passes must not be DDP forwards, or the embeddings are marked
    # ready twice. With one process DDP averages over one rank, so the weights must match the plain run.
    port = free_port()
    results = {}
    for mode in ("plain", "ddp"):
        out = tmp_path / mode
        out.mkdir()
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("hf_trainer_ddp_worker.py")), str(out), mode],
                              cwd=REPO, env=environment(MASTER_PORT=port), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        results[mode] = torch.load(out / "results.pt")
    for name in ("alum", "smart"):
        assert results["ddp"][name]["wrapper"] == "DistributedDataParallel"
        assert results["plain"][name]["wrapper"] != "DistributedDataParallel"
        for key, plain in results["plain"][name]["weights"].items():
            assert torch.allclose(plain, results["ddp"][name]["weights"][key], atol=1e-6, rtol=0), (name, key)


def test_the_trainers_gradient_checkpointing_is_made_non_reentrant_and_trains_alike(tmp_path):
    """TrainingArguments(gradient_checkpointing=True), as an HF user sets it: the ascent reaches delta (the
    reentrant kind would refuse its autograd.grad), and SMART trains as without it, to float32 rounding."""
    def run(path, **extra):
        model = tiny(dropout=0.1)
        model.accepts_loss_kwargs = False
        trainer = AdversarialTrainer(model=model, args=arguments(path, **extra), train_dataset=Examples(),
                                     adversarial="smart", adversarial_options={"constraint": "project", "eps": 0.05})
        trainer.train()
        return trainer, model

    trainer, checkpointed = run(tmp_path / "gc", gradient_checkpointing=True)
    assert checkpointed.is_gradient_checkpointing
    assert all(h["delta_norm"] > 0 for h in trainer.state.log_history if "loss" in h)
    _, plain = run(tmp_path / "plain")
    for (name, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)  # Adam steps of lr 1e-3: see test_recompute
    with pytest.raises(UserError, match="drop use_reentrant"):
        AdversarialTrainer(model=tiny(), train_dataset=Examples(), adversarial="smart",
                           args=arguments(tmp_path, gradient_checkpointing=True,
                                          gradient_checkpointing_kwargs={"use_reentrant": True}))


def test_the_trainers_early_stopping_callback_stops_the_drop_in(tmp_path):
    from transformers import EarlyStoppingCallback

    model = tiny()
    model.accepts_loss_kwargs = False
    args = arguments(tmp_path, max_steps=20, eval_strategy="steps", eval_steps=1, save_strategy="steps", save_steps=1,
                     load_best_model_at_end=True, metric_for_best_model="flat", greater_is_better=True)
    trainer = AdversarialTrainer(model=model, args=args, train_dataset=Examples(), eval_dataset=Examples(8),
                                 compute_metrics=lambda _: {"flat": 0.5}, adversarial="fgm",
                                 callbacks=[EarlyStoppingCallback(early_stopping_patience=2)])
    trainer.train()
    assert trainer.state.global_step == 3  # the first evaluation sets the bar, two more bring nothing


class Tagged(Examples):
    """The examples with a tag per token: -100 at padding and at every third token (a later sub-word)."""

    def __getitem__(self, i):
        tags = self.ids[i] % 3
        tags[self.mask[i] == 0] = -100
        tags[2::3] = -100
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": tags}


class Spans(Examples):
    """The examples with an answer span inside the unpadded tokens."""

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "start_positions": torch.tensor(i % 4 + 1),
                "end_positions": torch.tensor(i % 4 + 2)}


def head_model(cls, outputs: int):
    from transformers import BertConfig

    torch.manual_seed(0)
    return cls(BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=32, num_labels=outputs))


def test_a_token_classifier_through_the_drop_in_compares_its_labelled_words_only(tmp_path):
    """Without an adversarial_forward, a tagger's divergences are taken over its labelled positions (as `alum
    finetune` takes them), not over every position of the batch, padding included."""
    from transformers import BertForTokenClassification

    model = head_model(BertForTokenClassification, 3)
    data = Tagged()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path), train_dataset=data, adversarial="smart")
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in data[0]}
    model.eval()  # no dropout: the two forwards compared see the same network
    out = trainer.adversarial_forward(model, batch)
    labelled = batch["labels"] != -100
    assert out.logits.shape == (int(labelled.sum()), 3)
    assert torch.allclose(out.loss, model(**batch).loss, atol=1e-6)  # the model's own token loss, the same rows
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(h["adv_loss"] > 0 for h in logs)


def test_a_span_head_through_the_drop_in_trains_on_start_and_end_rows(tmp_path):
    """A question-answering head has no `logits`: its start and end rows are what the divergences compare,
    padding at MASKED (probability exactly 0), and its own loss is the task loss."""
    from transformers import BertForQuestionAnswering

    from alum.training.head_forwards import MASKED

    model = head_model(BertForQuestionAnswering, 2)
    data = Spans()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path), train_dataset=data, adversarial="smart")
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in data[0]}
    model.eval()
    out = trainer.adversarial_forward(model, batch)
    assert out.logits.shape == (8, 10)
    padding = (batch["attention_mask"] == 0).repeat(2, 1)
    assert (out.logits[padding] == MASKED).all() and (out.logits[~padding] > MASKED).all()
    assert torch.equal(out.loss, model(**batch).loss)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(h["adv_loss"] > 0 for h in logs)
