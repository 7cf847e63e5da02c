"""Token classification (named-entity recognition): a tag per word, scored by entity F1.

The model is `AutoModelForTokenClassification`. Its forward returns the logits of the labelled positions
only (each word's first sub-word), gathered into rows, (N, C), with the task loss the mean NLL over the same
rows: the shape the masked-LM forward gives the perturbation core, (N, V) at the masked positions. So every
label-free method (ALUM, SMART with its teacher, VAT, R-Drop) takes its divergence per word, averaged over the
batch's words: padding, special tokens and later sub-words never enter it, just as the official ALUM code
takes its KL at the masked positions only. SMART's paper (Jiang et al. 2020, eq. 3) defines the smoothness
term over the model's output distribution; for a tagger that output is one distribution per word, and the
per-word mean is the natural reading (the papers evaluate on sequence tasks only). The label-based methods
(FGSM, FGM, PGD, FreeAT, YOPO, FreeLB) climb and train on the task loss, as for sequence tasks.
"""

from __future__ import annotations

import numpy as np
import torch

from alum.training.head_forwards import IGNORE, tag_forward
from alum.training.metrics import say
from alum.finetune import tagged_data
from alum.finetune.entities import entity_scores, sentences
from alum.finetune.task_types import TaskType, train_and_dev


def load_tagger(model_dir, task):
    """The encoder with a token-classification head for the task's tags."""
    from transformers import AutoModelForTokenClassification

    from alum.finetune.model import load_with_head

    return load_with_head(AutoModelForTokenClassification, model_dir, task, "a token classifier")


def gold_rows(labels: torch.Tensor) -> np.ndarray:
    """(N, 2): each labelled position's tag id, and 1 where it is its sentence's first (rows in the order the
    forward gathers them, so sentences can be told apart after batches are concatenated)."""
    picked = labels != IGNORE
    first = picked & (picked.long().cumsum(dim=1) == 1)
    return torch.stack([labels[picked], first[picked].long()], dim=1).cpu().numpy()


def tag_metrics(logits: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Entity precision, recall and F1 (conlleval's chunks) and token accuracy of the predicted rows."""
    names = np.asarray(labels, dtype=object)
    pred, truth = names[logits.argmax(axis=-1)], names[gold[:, 0]]
    starts = gold[:, 1]
    return entity_scores(sentences(truth, starts), sentences(pred, starts))


class TokenClassification(TaskType):
    name = "token_classification"
    pipeline_tag = "token-classification"

    def load_model(self, model_dir, task):
        return load_tagger(model_dir, task)

    def sources(self, data, task, given):
        return train_and_dev(data, task, given, "token classification", tagged_data.OWN_FORMATS)

    def read(self, path, task, what):
        return tagged_data.read_tagged(path, task, what)

    def infer_labels(self, task, train):
        tagged_data.infer_tags(task, train)

    def encode(self, split, task, tokenizer, max_len):
        aligned = tagged_data.align(split, tagged_data.tag_ids(task, split), tokenizer, max_len)
        if aligned.cut_words:
            say(f"warning: {split.path}: {aligned.cut_words} words in {aligned.cut_sentences} sentences have no "
                f"sub-word within data.max_seq_len={max_len} (cut off, or tokenised to nothing): they are neither "
                "trained on nor scored")
        return aligned.encoded

    def collator(self, tokenizer, task):
        return tagged_data.TagCollator(tokenizer)

    def forward(self, model, task):
        return tag_forward(model)

    def gold(self, batch):
        return gold_rows(batch["labels"])

    def metrics(self, outputs, gold, task):
        return tag_metrics(outputs, gold, task.labels)
