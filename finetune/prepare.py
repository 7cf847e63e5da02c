"""Everything a fine-tuning command reads and checks before it trains: the model directory, the tokenizer,
and every split of the task (train, dev, extra dev sets), from files, a dataset or `datasets.Dataset`
objects. Bad input stops here, with one line naming the file, line or key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alum.errors import UserError
from alum.io.hf_dirs import check_model_dir, load_tokenizer, max_tokens
from alum.training.metrics import say
from alum.finetune.config import FinetuneConfig
from alum.finetune.data import Encoded, unknown_warning
from alum.finetune.model import check_pair, load_config
from alum.finetune.task_types import task_type
from alum.finetune.tasks import TaskConfig


@dataclass
class Prepared:
    cfg: FinetuneConfig
    task: TaskConfig  # with its labels known (a generic task's read from the training file)
    model_dir: Path
    tokenizer: object
    train: Encoded
    dev: Encoded
    extra_dev: dict[str, Encoded] = field(default_factory=dict)  # more dev sets (MNLI's mismatched), by name


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


def prepare(cfg: FinetuneConfig, train: Any = None, dev: Any = None,
            extra_dev: dict[str, Any] | None = None) -> Prepared:
    """`train`, `dev` and `extra_dev` (`datasets.Dataset` objects) take the place of the config's sources."""
    model_dir, tokenizer, max_len = load_model_and_tokenizer(cfg.model, cfg.tokenizer, cfg.data.max_seq_len)
    task = cfg.task
    kind = task_type(task)
    sources = kind.sources(cfg.data, task, {"train": train, "dev": dev, **(extra_dev or {})})
    splits = {name: kind.read(rows, task, "train" if name == "train" else "dev") for name, rows in sources.items()}
    kind.infer_labels(task, splits["train"])
    # every label checked as its split is encoded, before any training
    encoded = {name: kind.encode(split, task, tokenizer, max_len) for name, split in splits.items()}
    train_set = encoded.pop("train").subset(cfg.data.train_subset, cfg.data.subset_seed)
    dev_sets = {name: data.subset(cfg.data.dev_subset, cfg.data.subset_seed) for name, data in encoded.items()}
    unknown = unknown_warning(train_set, tokenizer, f"the training split {splits['train'].path}")
    if unknown:
        say(f"warning: {unknown}")
    dev_set = dev_sets.pop("dev")
    return Prepared(cfg, task, model_dir, tokenizer, train_set, dev_set, dev_sets)
