"""Shared by the finetune tests: a tiny model directory with its own tokenizer (built here, never
downloaded), and small task files written on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO / "data" / "glue" / "SST-2"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, num_labels=num_labels)
    model = BertForSequenceClassification(config) if head else BertForMaskedLM(config)
    model.save_pretrained(str(directory))
    return directory


def sst2_lines(n: int = 4000) -> list[str]:
    rows = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1 : n + 1]
    return [r.split("\t")[0] for r in rows]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny masked-LM BERT and its tokenizer, in one directory (as the pretrain stage exports them)."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    tok = build_tokenizer(directory, sst2_lines())
    return build_model_dir(directory, len(tok))


def write_tsv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    lines = (["\t".join(header)] if header else []) + ["\t".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sst2_subset(tmp_path: Path, train: int = 64, dev: int = 32) -> tuple[Path, Path]:
    """The first rows of the embedded SST-2 sample, as small train and dev files."""
    def head(name: str, n: int) -> Path:
        lines = (SST2 / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[: n + 1]
        out = tmp_path / f"{name}.tsv"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out

    return head("train", train), head("dev", dev)
