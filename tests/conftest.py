"""Shared fixtures: tiny random encoders of every supported family, batches with padding, and a trainer
that records what a method asks of the training loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

from alum.adversarial import ForwardOutput  # noqa: E402

FAMILIES = ["bert", "roberta", "deberta-v2", "electra", "distilbert", "modernbert"]
VOCAB = 97
PAD = 0


def tiny_config(family: str, num_labels: int = 3):
    import transformers as T

    common = dict(vocab_size=VOCAB, max_position_embeddings=64, num_labels=num_labels, pad_token_id=PAD)
    layers = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    if family == "bert":
        return T.BertConfig(**common, **layers)
    if family == "roberta":
        return T.RobertaConfig(**common, **layers)
    if family == "deberta-v2":
        return T.DebertaV2Config(**common, **layers)
    if family == "electra":
        return T.ElectraConfig(**common, **layers, embedding_size=16)
    if family == "distilbert":
        return T.DistilBertConfig(**common, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    if family == "modernbert":  # its dropouts default to 0; the train-mode tests need some to see masks
        return T.ModernBertConfig(**common, **layers, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
                                  embedding_dropout=0.1, mlp_dropout=0.1, attention_dropout=0.1)
    raise ValueError(family)


def tiny_classifier(family: str = "bert", num_labels: int = 3, seed: int = 0):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config(family, num_labels))


def tiny_mlm(family: str = "bert", seed: int = 0):
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(seed)
    return AutoModelForMaskedLM.from_config(tiny_config(family))


def classification_forward(model, batch) -> ForwardOutput:
    kwargs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    logits = model(**kwargs).logits
    loss = F.cross_entropy(logits.float(), batch["labels"]) if "labels" in batch else None
    return ForwardOutput(logits, loss)


def mlm_forward(model, batch) -> ForwardOutput:
    """Masked-LM logits at the masked positions only (labels != -100)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    picked = batch["labels"] != -100
    logits = logits[picked]
    return ForwardOutput(logits, F.cross_entropy(logits.float(), batch["labels"][picked]))


def make_batch(seed: int = 0, batch: int = 4, length: int = 9, num_labels: int = 3, mlm: bool = False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):  # every row but the first ends in padding
        pad_from = length - row
        ids[row, pad_from:] = PAD
        mask[row, pad_from:] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if mlm:
        labels = torch.full_like(ids, -100)
        chosen = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
        chosen[:, 0] = True
        labels[chosen] = ids[chosen]
        out["labels"] = labels
    else:
        out["labels"] = torch.randint(0, num_labels, (batch,), generator=g)
    return out


class RecordingTrainer:
    """Counts backward calls and optimizer steps. With `apply=False` nothing reaches the parameters."""

    def __init__(self, model=None, apply: bool = True, lr: float = 0.0):
        self.model, self.apply, self.lr = model, apply, lr
        self.backwards = 0
        self.steps = 0
        self.losses: list[float] = []

    def backward(self, loss):
        self.backwards += 1
        self.losses.append(float(loss.detach()))
        if self.apply:
            loss.backward()

    def loss_scale(self):
        return 1.0

    def optimizer_step(self):
        self.steps += 1
        if self.apply and self.lr and self.model is not None:
            with torch.no_grad():
                for p in self.model.parameters():
                    if p.grad is not None:
                        p -= self.lr * p.grad
                        p.grad = None


@pytest.fixture
def trainer_factory():
    return RecordingTrainer


SAMPLE_TEXT = Path(__file__).resolve().parents[1] / "data" / "corpus" / "wikitext-2-raw.sample.txt"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A 400-token byte-level BPE tokenizer (RoBERTa-style specials) trained on the embedded sample."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tokenizer")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(SAMPLE_TEXT)], vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
              show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                            model_max_length=512).save_pretrained(out)
    return out


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need a CUDA device and are skipped without one, so the README's one test command runs
    everything else on a CPU; `-m "not slow"` leaves out the end-to-end runs for a quick check."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
