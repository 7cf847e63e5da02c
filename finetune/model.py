"""The model side of a task: loading any local HF encoder directory with a classification head sized for
the task, checking it belongs with its tokenizer, the forward the perturbation core calls, and the export.

Loading never reaches the network: every path is a local directory.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from alum.adversarial import ForwardOutput
from alum.errors import UserError, writing
from alum.io.hf_dirs import max_tokens, quiet_transformers, save_tokenizer_for
from alum.io.model_card import ModelCard, write_card
from alum.io.publish import publish, staging
from alum.finetune.tasks import TaskConfig

TASK_FILE = "alum_task.json"  # the task spec saved next to an exported model, for `alum evaluate`
SAVED_LENGTH = "max_seq_len"  # the key of TASK_FILE that is not a task field


def load_config(path: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}/config.json: cannot be read as a model config: {str(err).splitlines()[0]}") from None


def check_pair(tokenizer, config, model_dir: Path, tokenizer_dir: Path, max_len: int, len_key: str) -> None:
    """A tokenizer that does not belong to the model fails here, not as an index error mid-training."""
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise UserError(f"{tokenizer_dir}: the tokenizer has {len(tokenizer)} tokens but the model in {model_dir} embeds "
                        f"{vocab} (vocab_size in config.json): the tokenizer does not match the model")
    pad = getattr(config, "pad_token_id", None)
    if pad is not None and tokenizer.pad_token_id != pad:
        raise UserError(f"{tokenizer_dir}: the tokenizer pads with id {tokenizer.pad_token_id} but the model in "
                        f"{model_dir} with id {pad} (pad_token_id in config.json): the tokenizer does not match the model")
    positions = max_tokens(config)
    if positions is not None and max_len > positions:
        raise UserError(f"{len_key} is {max_len} but the model in {model_dir} takes {positions} tokens (its "
                        "position embeddings)")


def classifier_class(config) -> type | None:
    """The class AutoModelForSequenceClassification builds for `config`, read before any work; None for a
    family it has none for, which `load_classifier` then reports."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:
        return None


def load_classifier(model_dir: Path, task: TaskConfig) -> tuple[nn.Module, list[str]]:
    """The encoder with a sequence-classification head for `task`; returns it and the names of the weights
    that were newly initialised (the head, when the directory holds an encoder or a masked-LM model)."""
    from transformers import AutoModelForSequenceClassification

    problem = "regression" if task.regression else "single_label_classification"
    return load_with_head(AutoModelForSequenceClassification, model_dir, task, "a sequence classifier",
                          problem_type=problem)


def load_with_head(auto_class, model_dir: Path, task: TaskConfig, what: str, **options) -> tuple[nn.Module, list[str]]:
    """`auto_class` (an AutoModelFor... class) from `model_dir` with a head sized for the task's labels, and the
    names of the weights newly initialised; `what` names the model in the error."""
    id2label = task.id2label()
    return load_auto(auto_class, model_dir, what, num_labels=task.num_labels, id2label=id2label,
                     label2id={v: k for k, v in id2label.items()}, **options)


def load_auto(auto_class, model_dir: Path, what: str, **options) -> tuple[nn.Module, list[str]]:
    """`auto_class` from `model_dir` with the config `options`, and the names of the weights newly initialised
    (a head the directory lacks, or one of another size)."""
    try:
        with quiet_transformers():  # the caller reports the initialised weights, in one line
            model, info = auto_class.from_pretrained(
                str(model_dir), local_files_only=True, ignore_mismatched_sizes=True, output_loading_info=True, **options
            )
    except (OSError, ValueError) as err:
        raise UserError(f"{model_dir}: cannot load as {what}: {str(err).splitlines()[0]}") from None
    fresh = list(info.get("missing_keys", [])) + [m[0] if isinstance(m, tuple) else str(m)
                                                   for m in info.get("mismatched_keys", [])]
    return model, sorted(fresh)


def make_forward(model: nn.Module, regression: bool):
    """forward(model, batch) -> ForwardOutput: the logits (scores for regression) and the task loss in float32."""
    accepted = set(inspect.signature(model.forward).parameters)
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]

    def forward(m: nn.Module, batch: dict[str, torch.Tensor]) -> ForwardOutput:
        logits = m(**{k: batch[k] for k in inputs if k in batch}).logits
        labels = batch.get("labels")
        if labels is None:
            return ForwardOutput(logits)
        if regression:
            return ForwardOutput(logits, loss_fn=lambda out: F.mse_loss(out.logits.float().squeeze(-1), labels.float()))
        # Computed when first read, from the float32 log-probabilities the divergences share.
        return ForwardOutput(logits, loss_fn=lambda out: F.nll_loss(out.log_probs, labels))

    return forward


@contextlib.contextmanager
def full_weights(engine, modify: bool = False):
    """Every parameter whole on every rank (ZeRO-3 keeps them sharded outside a forward); with `modify`,
    what rank 0 writes into them is sharded back on exit."""
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        params = list(engine.module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modify else None):
            yield
    else:
        yield


def export(model: nn.Module, tokenizer, task: TaskConfig, directory: Path,
           card: Callable[[Path], ModelCard] | None = None, max_seq_len: int | None = None) -> Path:
    """A HF directory that AutoModelForSequenceClassification loads with no code of ours, label names in its
    config, the tokenizer, the task spec, and the model card `card(staged directory)` makes. Written aside and
    swapped in by renames, so a kill at any moment leaves one complete copy (`<name>/`, or `<name>.old/` in the
    instant between the two renames)."""
    directory = Path(directory)
    partial = staging(directory)
    try:
        with writing("the model", directory), quiet_transformers():
            model.save_pretrained(str(partial))
            save_tokenizer_for(model, tokenizer, partial)
            # beside the task, the length fine-tuning cut examples to: `alum evaluate` reads them at it by default
            saved = {**task.to_dict(), **({SAVED_LENGTH: max_seq_len} if max_seq_len else {})}
            (partial / TASK_FILE).write_text(json.dumps(saved, indent=2) + "\n")
            if card is not None:  # it reads the saved weights: their family and size
                write_card(partial, card(partial))
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish(partial, directory)
    return directory
