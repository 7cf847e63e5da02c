"""The finetune stage's config: the YAML schema behind `alum finetune --config configs/finetune/<task>.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from alum.adversarial.config import AdversarialConfig
from alum.config import load_config
from alum.training.deepspeed_config import EngineConfig, zero_stage
from alum.training.metrics import WandbConfig
from alum.training.optim import OptimConfig
from alum.finetune.tasks import TaskConfig


@dataclass
class FinetuneOptim(OptimConfig):
    """Fine-tuning defaults (BERT's recipe) in place of the pretraining ones."""

    lr: float = 2e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup: int | float = 0.1


@dataclass
class FinetuneEngine(EngineConfig):
    micro_batch_size: int = 32


@dataclass
class DataConfig:
    # Files (tsv, csv, jsonl, parquet, arrow, or a save_to_disk folder) or a dataset, not both: a dataset given
    # on the command line sets the preset's files aside.
    ALTERNATIVES: ClassVar[tuple] = (("train_file", "dataset"), ("dev_file", "dataset"),
                                     ("extra_dev_files", "dataset"))
    train_file: str = ""
    dev_file: str = ""
    extra_dev_files: dict[str, str] = field(default_factory=dict)  # more dev sets, reported apart: {name: file}
    # A dataset, loaded with datasets.load_dataset (a local dataset folder, or a Hub name where there is
    # network) or load_from_disk (a save_to_disk folder holding a DatasetDict).
    dataset: str = ""
    dataset_config: str = ""  # the dataset's configuration (glue's sst2, mnli, ...)
    train_split: str = "train"  # the splits of a dataset, or of a DatasetDict saved with save_to_disk
    dev_split: str = "validation"
    extra_dev_splits: dict[str, str] = field(default_factory=dict)  # {name: split}, with data.dataset
    max_seq_len: int = 128
    train_subset: int = 0  # train on this many examples drawn at random (0 = all), the same for every seed
    dev_subset: int = 0  # evaluate on this many dev examples drawn at random (0 = all)
    subset_seed: int = 0

    def validate(self) -> None:
        given = [key for key in ("train_file", "dev_file", "extra_dev_files") if getattr(self, key)]
        if self.dataset and given:
            raise ValueError(f"dataset and data.{given[0]}: give the task's files or a dataset, not both")
        for name in [*self.extra_dev_files, *self.extra_dev_splits]:
            if name in ("train", "dev") or not str(name).isidentifier():
                raise ValueError(f"extra dev set '{name}': name it with a word other than train and dev")
        if self.max_seq_len < 8:
            raise ValueError("max_seq_len must be at least 8")
        for key in ("train_subset", "dev_subset"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be 0 (all) or a number of examples, got {getattr(self, key)}")


@dataclass
class FinetuneAdversarial(AdversarialConfig):
    # A core method (`alum methods` lists them), or several (a list, or separated by commas): each is then
    # trained with every seed into its own subdirectory, and the summary compares them.
    method: str | list[str] = "smart"


@dataclass
class AttackConfig:
    enabled: bool = True
    # Radius of delta. Per token and L2 by default: compare it with the norm of the model's token
    # embeddings (about 1.1 for MiniLM's word embeddings: 0.01 takes a 60-update SST-2 model from 73% to 63%).
    eps: float = 0.01
    steps: int = 5
    step_size: float = 0.0  # 0: 2.5 * eps / steps (the rule of Madry et al.), so K steps can cross the ball
    norm: Literal["l2", "linf"] = "l2"
    level: Literal["token", "example"] = "token"

    def validate(self) -> None:
        for key, low in (("eps", 0), ("steps", 1), ("step_size", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be at least {low}, got {getattr(self, key)}")

    @property
    def alpha(self) -> float:
        return self.step_size or 2.5 * self.eps / self.steps


@dataclass
class EvaluateConfig:
    """What `alum evaluate` is asked: models (several to compare) on one file in their task's format, or on
    one split of a dataset."""

    models: list[str]  # HF model directories, e.g. the best/ of `alum finetune`
    file: str = ""  # a task file (tsv, csv, jsonl, parquet, arrow; CoNLL; SQuAD JSON) or a save_to_disk folder
    dataset: str = ""  # or a dataset, as finetune's data.dataset: a save_to_disk or dataset folder, a Hub name
    dataset_config: str = ""
    split: str = "validation"  # the dataset's split
    task: str | None = None  # a GLUE preset's name or a YAML config with a task section; None: alum_task.json
    tokenizer: str | None = None  # None: each model's own
    max_seq_len: int | None = None  # None: 128, or the model's positions if fewer
    batch_size: int = 64
    attack: AttackConfig = field(default_factory=AttackConfig)
    output: str | None = None  # also write the summary here, as JSON


@dataclass
class TrainConfig:
    epochs: int = 3
    max_steps: int = 0  # optimizer updates; when > 0 it replaces epochs
    seeds: int = 1  # how many seeds to run: seed, seed + 1, ...
    seed: int = 1
    eval_every: int = 0  # updates between dev evaluations; 0 = once per epoch (and always at the end)
    log_every: int = 10
    eval_batch_size: int = 64
    save_seed_models: bool = False  # also export every seed's best checkpoint to seed-<s>/best (best/ always)
    # Early stopping: end a seed once this many dev evaluations in a row brought no gain of more than
    # min_delta in the task metric (0 = train to the end). The best checkpoint is still the best evaluation's.
    patience: int = 0
    min_delta: float = 0.0
    # Recompute each layer's activations in the backward instead of keeping them: less memory, about one more
    # forward of time. The same weights to float32 rounding (finetune/README.md).
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        for key, low in (("epochs", 1), ("seeds", 1), ("log_every", 1), ("eval_batch_size", 1), ("max_steps", 0),
                         ("eval_every", 0), ("patience", 0), ("min_delta", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be at least {low}, got {getattr(self, key)}")


@dataclass
class FinetuneConfig:
    model: str | None = None  # a local HF model directory: the pretrain stage's export, or any encoder checkpoint
    tokenizer: str | None = None  # a tokenizer directory; none = the model directory
    output: str = "runs/finetune"
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adversarial: FinetuneAdversarial = field(default_factory=FinetuneAdversarial)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: FinetuneOptim = field(default_factory=FinetuneOptim)
    engine: FinetuneEngine = field(default_factory=FinetuneEngine)
    attack: AttackConfig = field(default_factory=AttackConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        if not self.model:
            raise ValueError("model: not set (a config key, or its flag: --model)")
        why = self.adversarial.refusal(self.engine.grad_accum, zero_stage(self.engine, self.optim))
        if why:
            raise ValueError(why)

    def seeds(self) -> list[int]:
        return list(range(self.train.seed, self.train.seed + self.train.seeds))


def load_finetune_config(path: str | None, overrides: list[str], flags: dict[str, Any] | None = None) -> FinetuneConfig:
    """The config from YAML (or a preset's name), overrides and flags, every method's options checked too (a
    typo fails now, not after hours of training)."""
    return load_config(FinetuneConfig, path, overrides, flags, kind="finetune")
