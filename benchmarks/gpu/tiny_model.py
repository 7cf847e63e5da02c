"""For the GPU run's tiny CPU mode: a tiny BERT encoder and a WordPiece tokenizer trained on the task files,
saved as a local HF directory, so the evidence part runs its real code path in seconds without MiniLM.

    python benchmarks/gpu/tiny_model.py OUT_DIR TEXT_FILE [TEXT_FILE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast


def build(out: Path, files: list[Path]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    # the tsv files whole, header and labels included: it only has to cover the words
    wordpiece.train([str(f) for f in files], vocab_size=1000, show_progress=False)
    # From the trained object: transformers 5 ignores BertTokenizerFast(vocab_file=...) and makes a tokenizer
    # of the five special tokens alone, which turned every word into [UNK].
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", sep_token="[SEP]",
                                  pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    tokenizer.save_pretrained(str(out))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(str(out))
    return out


if __name__ == "__main__":
    print(f"tiny_model.py: {build(Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]])}")
