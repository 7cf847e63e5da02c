"""Masked-LM models: built from a preset shape, or loaded from any local HF directory."""

from __future__ import annotations

from typing import Any

from alum.errors import UserError
from alum.io.hf_dirs import check_model_dir
from alum.pretrain.config import ModelConfig

# Shapes and families of the presets. The large ones match the published BERT / RoBERTa models.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(family="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "small": dict(family="bert", hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "bert-base": dict(family="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(family="bert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "roberta-base": dict(family="roberta", hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "roberta-large": dict(family="roberta", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def build_config(cfg: ModelConfig, tokenizer, block_size: int):
    import transformers as T

    shape = dict(PRESETS[cfg.preset])
    family = cfg.family or shape.pop("family")
    shape.pop("family", None)
    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=block_size + (2 if family == "roberta" else 0),  # RoBERTa offsets positions by 2
    )
    if family == "distilbert":
        shape = dict(dim=shape["hidden_size"], n_layers=shape["num_hidden_layers"],
                     n_heads=shape["num_attention_heads"], hidden_dim=shape["intermediate_size"])
    if family == "roberta":
        common.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1)
    if family == "modernbert":  # it names its sequence tokens in the config; rotary positions, no offset
        common.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
    classes = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "deberta-v2": T.DebertaV2Config,
               "electra": T.ElectraConfig, "distilbert": T.DistilBertConfig, "modernbert": T.ModernBertConfig}
    cls = classes[family]
    blank = cls()
    for key in cfg.overrides:
        if not hasattr(blank, key):
            raise UserError(f"model.overrides: '{key}' is not a field of {cls.__name__}")
    # Into the constructor, not set afterwards: fields derived from others (ModernBERT's layer_types from
    # num_hidden_layers) are derived from the overridden values.
    return cls(**{**common, **shape, **cfg.overrides})


def load_model(cfg: ModelConfig, tokenizer, block_size: int, log=print):
    """The MLM model and a one-line description of where it came from."""
    from transformers import AutoModelForMaskedLM

    if cfg.path is None:
        model = AutoModelForMaskedLM.from_config(build_config(cfg, tokenizer, block_size))
        return model, f"new {model.config.model_type} model ({cfg.preset} shape), randomly initialised"

    path = check_model_dir(cfg.path, "model.path")
    model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if "position_ids" not in k]
    origin = f"{model.config.model_type} model from {path}"
    if missing:
        heads = sorted({k.split(".")[0] for k in missing})
        origin += f" (the checkpoint has no MLM head: initialised {', '.join(heads)} randomly, {len(missing)} tensors)"
    check_vocab(model, tokenizer, path)
    if model.config.max_position_embeddings < block_size:
        raise UserError(
            f"data.block_size {block_size} is longer than the model's max_position_embeddings "
            f"{model.config.max_position_embeddings} ({path})"
        )
    return model, origin


def check_vocab(model, tokenizer, where) -> None:
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise UserError(
            f"the tokenizer has {len(tokenizer)} tokens but the model at {where} has {rows} embedding rows: "
            "they do not belong together"
        )
