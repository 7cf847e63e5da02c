"""Question-answering helpers: the embedded SQuAD sample, tiny WordPiece (BERT) and byte-level BPE (RoBERTa)
fast tokenizers trained on its text (built here, never downloaded), and a tiny QA model for either."""

from __future__ import annotations

import functools
import json

import torch

from support.paths import REPO

SQUAD_V2_DEV = REPO / "data" / "squad" / "dev-v2.0.sample.json"
TOKENIZERS = ["wordpiece", "bytelevel"]


@functools.cache
def sample_texts() -> tuple[str, ...]:
    squad = json.loads(SQUAD_V2_DEV.read_text(encoding="utf-8"))
    return tuple(t for a in squad["data"] for p in a["paragraphs"] for t in [p["context"]] + [q["question"] for q in p["qas"]])


@functools.cache
def tiny_tokenizer(kind: str, vocab: int = 1500):
    """A fast tokenizer of `kind` ("wordpiece": BERT's, with token_type_ids; "bytelevel": RoBERTa's, without)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(sample_texts(), trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials,
                                                                          show_progress=False))
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]",
                                       model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    if kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok.train_from_iterator(sample_texts(), trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                                    show_progress=False))
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                       pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                       model_input_names=["input_ids", "attention_mask"])
    raise ValueError(kind)


def tiny_qa_model(tokenizer, seed: int = 0, max_positions: int = 128):
    """A 1-layer, 32-wide BertForQuestionAnswering sized for `tokenizer`, built from a config."""
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id)
    return BertForQuestionAnswering(config)


def build_qa_model_dir(directory, kind: str = "wordpiece", max_positions: int = 128):
    """A tiny masked-LM BERT (as the pretrain stage exports it: no span head yet) with the `kind` tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    tok = tiny_tokenizer(kind)
    tok.save_pretrained(str(directory))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id)
    BertForMaskedLM(config).save_pretrained(str(directory))
    return directory


def split_sample(directory, paragraphs: tuple[int, int] = (8, 3), answerable_only: bool = False):
    """A test fixture, not an evaluation protocol: the v2.0 dev sample cut, deterministically, into a training
    file (its first `paragraphs[0]` paragraphs) and a dev file (the next `paragraphs[1]`), as SQuAD JSON;
    `answerable_only` drops the unanswerable questions (a v1.1 file)."""
    squad = json.loads(SQUAD_V2_DEV.read_text(encoding="utf-8"))
    paras = [p for a in squad["data"] for p in a["paragraphs"]]
    if answerable_only:
        paras = [{**p, "qas": [q for q in p["qas"] if not q.get("is_impossible")]} for p in paras]
        paras = [p for p in paras if p["qas"]]
    n_train, n_dev = paragraphs
    out = []
    for name, chosen in (("train", paras[:n_train]), ("dev", paras[n_train:n_train + n_dev])):
        path = directory / f"{name}-{'v1.1' if answerable_only else 'v2.0'}.json"
        version = "1.1" if answerable_only else "v2.0"
        path.write_text(json.dumps({"version": version, "data": [{"title": "sample", "paragraphs": chosen}]}),
                        encoding="utf-8")
        out.append(path)
    return tuple(out)
