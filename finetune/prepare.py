"""Everything a fine-tuning command reads and checks before it trains: the model directory, the tokenizer,
and both task files. Bad input stops here, with one line naming the file, line or key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alum.errors import UserError
from alum.io.hf_dirs import check_model_dir, load_tokenizer, max_tokens
from alum.training.metrics import say
from alum.training.recompute import check_supported
from alum.finetune.config import FinetuneConfig
from alum.finetune.data import Encoded, encode, infer_labels, label_ids, read_split, unknown_warning
from alum.finetune.model import check_pair, classifier_class, load_config
from alum.finetune.tasks import TaskConfig


@dataclass
class Prepared:
    cfg: FinetuneConfig
    task: TaskConfig  # with its labels known (a generic task's read from the training file)
    model_dir: Path
    tokenizer: object
    train: Encoded
    dev: Encoded


def load_model_and_tokenizer(model: str, tokenizer: str | None, max_len: int | None,
                             len_key: str = "data.max_seq_len") -> tuple[Path, object, int]:
    """The checked model directory, its tokenizer (the model's own unless `tokenizer` names another), and
    the sequence length to use (`max_len`, or by default 128 or the model's positions if fewer)."""
    model_dir = check_model_dir(model)
    config = load_config(model_dir)  # before the tokenizer, which reads config.json too and would hide why
    check_weights(model_dir)
    tokenizer_dir = Path(tokenizer) if tokenizer else model_dir
    key = "tokenizer" if tokenizer else "model"
    tok = load_tokenizer(tokenizer_dir, key)
    if tok.pad_token_id is None:
        raise UserError(f"{tokenizer_dir}: the tokenizer has no padding token ({key})")
    if max_len is None:
        max_len = min(128, max_tokens(config) or 128)
    check_pair(tok, config, model_dir, tokenizer_dir, max_len, len_key)
    return model_dir, tok, max_len


def check_weights(model_dir: Path) -> None:
    """A truncated or corrupt safetensors file fails here, naming it, not as a traceback when the model loads
    (reading the header costs nothing: the tensors are not read)."""
    from safetensors import safe_open

    for path in sorted(model_dir.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as err:  # safetensors raises its own error type for a bad header
            text = str(err).strip().splitlines()
            raise UserError(f"{path}: cannot be read as safetensors weights ({text[0] if text else type(err).__name__})"
                            "; the file may be truncated") from None


def prepare(cfg: FinetuneConfig) -> Prepared:
    model_dir, tokenizer, max_len = load_model_and_tokenizer(cfg.model, cfg.tokenizer, cfg.data.max_seq_len)
    classifier = classifier_class(load_config(model_dir))
    if cfg.train.gradient_checkpointing and classifier is not None:  # refused now, not after the first seed
        check_supported(classifier, model_dir)
    task = cfg.task
    train_split = read_split(cfg.data.train_file, task, "train")
    dev_split = read_split(cfg.data.dev_file, task, "dev")
    infer_labels(task, train_split)
    train_labels, dev_labels = label_ids(task, train_split), label_ids(task, dev_split)  # every row checked
    train = encode(train_split, train_labels, tokenizer, max_len).subset(cfg.data.train_subset, cfg.data.subset_seed)
    dev = encode(dev_split, dev_labels, tokenizer, max_len).subset(cfg.data.dev_subset, cfg.data.subset_seed)
    unknown = unknown_warning(train, tokenizer, f"the training file {train_split.path}")
    if unknown:
        say(f"warning: {unknown}")
    return Prepared(cfg, task, model_dir, tokenizer, train, dev)
