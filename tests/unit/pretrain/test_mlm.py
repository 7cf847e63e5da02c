"""The masked-LM forward (alum/pretrain/mlm.py) on tiny random encoders of every family."""

from __future__ import annotations

import pytest
import torch

from alum.pretrain.data import with_mlm_index
from alum.pretrain.mlm import mlm_forward
from support.models import FAMILIES, make_batch, tiny_mlm


@pytest.mark.parametrize("family", FAMILIES)
def test_mlm_forward_scores_masked_positions_only(family):
    """The LM head sees the masked positions alone: its logits are exactly the full model's logits there, so
    every divergence and the loss count masked positions only."""
    model = tiny_mlm(family).eval()
    batch = with_mlm_index(make_batch(0, mlm=True))
    picked = batch["labels"] != -100
    out = mlm_forward(model, batch)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert out.logits.shape == (int(picked.sum()), full.shape[-1])
    torch.testing.assert_close(out.logits, full[picked])
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(full[picked], batch["labels"][picked]))
