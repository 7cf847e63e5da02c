"""A tiny classification run through transformers.Trainer (or a subclass such as alum's AdversarialTrainer):
the examples, the model, the arguments. transformers.Trainer needs accelerate: a test module checks for it
(pytest.importorskip) before importing this one."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments


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
    return TrainingArguments(**{
        "output_dir": str(tmp_path), "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
        "max_steps": 3, "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "use_cpu": True, "seed": 0, "data_seed": 0, "disable_tqdm": True, **extra})


def trained(cls, tmp_path, **kwargs):
    model = tiny()
    # transformers 5 takes any model whose forward has **kwargs for one that normalises its loss over the
    # accumulated batch and then skips the division by the accumulation steps; BERT's classification loss
    # is a plain per-batch mean, so the plain Trainer would sum the micro-batches. Say what is true.
    model.accepts_loss_kwargs = False
    trainer = cls(model=model, args=arguments(tmp_path), train_dataset=Examples(), **kwargs)
    trainer.train()
    return trainer, model
