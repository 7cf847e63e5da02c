"""Tiny random encoders of every supported family, their forwards, batches with padding, and tiny model
directories with their own tokenizer (built here, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from alum.adversarial import ForwardOutput

FAMILIES = ["bert", "roberta", "deberta-v2", "electra", "distilbert", "modernbert"]
VOCAB = 97
PAD = 0
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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


TASKS = {"classification": (tiny_classifier, classification_forward, False), "mlm": (tiny_mlm, mlm_forward, True)}


def setup(task: str, train: bool = False, float64: bool = False):
    """A tiny BERT for `task` (a key of TASKS) in train or eval mode, its forward, and a batch for it."""
    build, forward, mlm = TASKS[task]
    model = build("bert").train(train)
    return model.double() if float64 else model, forward, make_batch(3, mlm=mlm)


def build_tokenizer(directory: Path, lines: list[str], vocab: int = 400):
    """A word-level BERT-style tokenizer trained on `lines`, saved as a HF tokenizer directory."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.WordLevelTrainer(vocab_size=vocab, special_tokens=SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(directory))
    return fast


def build_model_dir(directory: Path, vocab_size: int, seed: int = 0, head: bool = False, num_labels: int = 2) -> Path:
    """A tiny BERT saved as the pretrain stage would (masked LM), or with a classification head."""
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, num_labels=num_labels)
    model = BertForSequenceClassification(config) if head else BertForMaskedLM(config)
    model.save_pretrained(str(directory))
    return directory
