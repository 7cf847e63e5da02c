"""What a GPU user expects of the engine: fused AdamW on CUDA, and models built with PyTorch's
scaled-dot-product attention wherever the family has it."""

from __future__ import annotations

import pytest
import torch

from alum.io.hf_dirs import load_tokenizer
from alum.pretrain.config import ModelConfig
from alum.pretrain.model import load_model
from alum.training.optim import OptimConfig, build_optimizer
from support.models import FAMILIES, tiny_classifier

pytestmark = pytest.mark.gpu


def test_adamw_is_fused_on_cuda():
    optimizer = build_optimizer(tiny_classifier("bert").cuda(), OptimConfig(), {})
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"]


@pytest.mark.parametrize("family", FAMILIES)
def test_pretraining_models_use_sdpa_where_the_family_has_it(tokenizer_dir, family):
    cfg = ModelConfig(preset="tiny", family=family,
                      overrides={"num_hidden_layers": 1} if family != "distilbert" else {"n_layers": 1})
    model, _ = load_model(cfg, load_tokenizer(tokenizer_dir, "tokenizer"), block_size=32)
    expected = "eager" if family == "deberta-v2" else "sdpa"  # DeBERTa-v2 has no SDPA attention in transformers
    assert model.config._attn_implementation == expected
