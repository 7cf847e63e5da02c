"""What a method perturbs (alum/adversarial/target.py): delta enters once, at the site asked for, in every
family; a forward's outputs compute their log-probabilities and loss once."""

from __future__ import annotations

import pytest
import torch

from alum.adversarial import Target
from support.models import FAMILIES, classification_forward, make_batch, tiny_classifier


@pytest.mark.parametrize("family", FAMILIES)
def test_delta_enters_once_at_the_site_asked_for(family):
    """"words": the word-embedding output moves by delta; "embeddings": the embedding block's output does."""
    model = tiny_classifier(family).eval()
    target = Target(model, classification_forward)
    batch = make_batch(4)
    sites = {"words": target.perturbation.embedding, "embeddings": target.perturbation.block}

    def observed() -> dict:  # hooks registered last see what the next module receives
        seen = {}
        hooks = [m.register_forward_hook(lambda mod, i, o, key=key: seen.__setitem__(key, o[0] if isinstance(o, tuple) else o))
                 for key, m in sites.items()]
        target(batch)
        for h in hooks:
            h.remove()
        return seen

    clean = observed()
    for site in sites:
        delta = torch.randn(target.perturbation.shape(batch["input_ids"], site))
        with target.perturbation.applied(delta, site):
            seen = observed()
        torch.testing.assert_close(seen[site], clean[site] + delta)
        if site == "embeddings":  # the words were left alone: delta entered once
            torch.testing.assert_close(seen["words"], clean["words"])


def test_forward_output_computes_log_probs_and_loss_once():
    calls = {"n": 0}

    def loss_fn(out):
        calls["n"] += 1
        return -out.log_probs[:, 0].mean()

    from alum.adversarial import ForwardOutput

    out = ForwardOutput(torch.randn(4, 5), loss_fn=loss_fn)
    assert out.log_probs is out.log_probs
    assert out.loss is out.loss and calls["n"] == 1
