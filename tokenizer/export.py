"""Saving a trained tokenizer as a Hugging Face tokenizer directory that
`transformers.AutoTokenizer.from_pretrained(DIR)` loads as a fast tokenizer with no code of ours.

The directory holds what `PreTrainedTokenizerFast.save_pretrained` writes: `tokenizer.json` (the whole
pipeline, written by `tokenizers`) and `tokenizer_config.json` (special-token roles, model_max_length,
padding side). We write the second file ourselves instead of going through transformers: importing
transformers takes about 0.7 s, a quarter of a 10 MB training run, and the stage must stay within 1.1x of
calling `tokenizers` directly. tests/unit/tokenizer/test_export.py checks that transformers loads it exactly
as it loads its own save_pretrained output.
"""

from __future__ import annotations

import json
from pathlib import Path

from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.pipeline import specials_of

# The generic fast class: transformers 4 and 5 both load it (5 maps it to its tokenizers backend; the name
# 5 itself records, "TokenizersBackend", does not exist in 4).
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def save_hf(tokenizer, cfg: TokenizerConfig, directory: Path) -> None:
    directory = Path(directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", tokenizer_config(tokenizer, cfg))


def tokenizer_config(tokenizer, cfg: TokenizerConfig) -> dict:
    specials = specials_of(cfg)
    added = {}
    for token in specials.added_tokens():
        added[str(tokenizer.token_to_id(token.content))] = {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": token.normalized,
            "rstrip": token.rstrip,
            "single_word": token.single_word,
            "special": token.special,
        }
    return {
        "tokenizer_class": TOKENIZER_CLASS,
        "added_tokens_decoder": added,
        **specials.roles,
        "model_max_length": cfg.model_max_length,
        "padding_side": cfg.padding_side,
        # transformers' default tidies " ." into "." when decoding, which would break decode(encode(x)) == x.
        "clean_up_tokenization_spaces": False,
        "model_input_names": list(specials.model_input_names),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
