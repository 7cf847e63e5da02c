"""The masked-LM forward with the LM head on masked positions only.

A forward hook on the encoder (`model.base_model`) replaces its output sequence by the hidden states at the
masked positions, so the model's own head, whatever its family, projects (1, N, hidden) instead of
(batch, length, hidden) onto the vocabulary. With 15% masking that is ~7x less head work, and the logits a
divergence compares are exactly the masked positions'.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from alum.adversarial import ForwardOutput


@contextlib.contextmanager
def masked_positions_only(model: torch.nn.Module, index: torch.Tensor):
    def gather(_module, _inputs, output):
        hidden = output[0]
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index).unsqueeze(0)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output["last_hidden_state"] = picked
        return output

    handle = model.base_model.register_forward_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def mlm_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> ForwardOutput:
    """Logits (N, vocab) at the N masked positions, and their cross-entropy (in float32)."""
    index = batch["mlm_index"]
    with masked_positions_only(model, index):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["mlm_targets"]
    return ForwardOutput(logits.reshape(-1, logits.shape[-1]), loss_fn=lambda out: F.nll_loss(out.log_probs, targets))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], device) -> dict[str, float]:
    """Validation MLM loss (mean over masked tokens), perplexity and accuracy."""
    if not batches:
        return {}
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = mlm_forward(model, batch)
        n = batch["mlm_targets"].numel()
        total_loss += float(out.loss) * n
        correct += int((out.logits.argmax(-1) == batch["mlm_targets"]).sum())
        count += n
    model.train(was_training)
    loss = total_loss / max(count, 1)
    return {"val_loss": loss, "val_perplexity": float(torch.tensor(loss).exp()), "val_accuracy": correct / max(count, 1)}
