"""The pretrain stage's config schema (configs/pretrain/*.yaml are instances of it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from alum.adversarial.config import AdversarialConfig
from alum.config import load_config, parse_override
from alum.training.deepspeed_config import EngineConfig, zero_stage
from alum.training.metrics import WandbConfig, say
from alum.training.optim import OptimConfig

DEFAULT_START_FRACTION = 0.5  # the adversarial phase is the second half unless a key says otherwise

Family = Literal["bert", "roberta", "deberta-v2", "electra", "distilbert", "modernbert"]


@dataclass
class ModelConfig:
    path: str | None = None  # a local HF model directory to continue pretraining from
    preset: Literal["tiny", "small", "bert-base", "bert-large", "roberta-base", "roberta-large"] = "tiny"
    family: Family | None = None  # architecture for a model built from scratch (default: the preset's)
    overrides: dict[str, Any] = field(default_factory=dict)  # transformers config fields, e.g. hidden_size


@dataclass
class DataConfig:
    files: list[str] = field(default_factory=list)  # files, globs or directories
    # A corpus made by `alum prepare` (--data-dir): training reads its shards and never the text. Its manifest
    # must match data.tokenizer, data.block_size, masking.whole_word and, when set, data.files.
    prepared: str | None = None
    tokenizer: str | None = None  # a HF tokenizer directory (ours or any)
    text_column: str = "text"  # for jsonl / csv / parquet / arrow inputs and save_to_disk folders
    split: str = "train"  # the split read from a save_to_disk folder that holds a DatasetDict
    block_size: int = 128  # tokens per packed training sequence
    validation: int | float = 0.02  # held-out blocks: a count, or a fraction of the corpus
    # Read, tokenise and pack on the fly instead of preparing first; resume seeks to where it stopped.
    streaming: bool = False
    shuffle_buffer: int = 10_000  # streaming only: blocks; the buffer is saved in each checkpoint
    strict: bool = False  # stop at the first undecodable line instead of skipping it
    num_proc: int = 0  # processes preparing the corpus (0: every core)
    # Where data.files are prepared when data.prepared is not set (default: the HF datasets cache); every
    # node must see it: rank 0 prepares, the others wait for it.
    cache_dir: str | None = None

    def validate(self) -> None:
        if self.block_size < 8:
            raise ValueError("data.block_size must be at least 8")
        if self.validation < 0 or (isinstance(self.validation, float) and self.validation >= 1):
            raise ValueError("data.validation must be a number of blocks (>= 0) or a fraction in [0, 1)")
        if self.num_proc < 0:
            raise ValueError("data.num_proc must be 0 (every core) or more")
        if self.prepared is not None and self.streaming:
            raise ValueError("data.prepared and data.streaming exclude each other: a prepared corpus is read by index")


@dataclass
class MaskingConfig:
    probability: float = 0.15
    mask_replace: float = 0.8  # of the chosen tokens: [MASK]
    random_replace: float = 0.1  # a random token; the rest stay as they are
    whole_word: bool = False

    def validate(self) -> None:
        if not 0 < self.probability < 1 or self.mask_replace + self.random_replace > 1:
            raise ValueError("masking.probability must be in (0, 1) and mask_replace + random_replace <= 1")


@dataclass
class PretrainAdversarial(AdversarialConfig):
    """The core's section, with pretraining's schedule: one method (`none` trains standard MLM throughout),
    switched on for the final steps."""

    method: str | list[str] = "alum"
    # Where the adversarial phase starts: after `start_step` masked-LM steps (the method's first step is
    # start_step + 1), or after that share of max_steps. One or the other; neither: start_fraction 0.5.
    start_step: int | None = None
    start_fraction: float | None = None
    preflight: bool = True  # run one adversarial step at start-up, so memory errors show at step 0

    # One key used to hold both: `1` was step 1 and `1.0` the whole run, and nothing said which was meant.
    RETIRED: ClassVar[dict[str, str]] = {
        "start": "set adversarial.start_step (a number of masked-LM steps) or adversarial.start_fraction (a share "
                 "of max_steps) instead: under the one key, 1 meant step 1 and 1.0 the whole run"}
    ALTERNATIVES: ClassVar[tuple] = (("start_step", "start_fraction"),)

    def validate(self) -> None:
        super().validate()
        if len(self.methods) > 1:
            raise ValueError(f"method: pretraining runs one method after the switch, got {', '.join(self.methods)}")
        if self.start_step is not None and self.start_fraction is not None:
            raise ValueError(f"adversarial.start_step ({self.start_step}) and adversarial.start_fraction "
                             f"({self.start_fraction}) are both set: set one")
        if self.start_step is not None and self.start_step < 0:
            raise ValueError(f"adversarial.start_step must be 0 or more, got {self.start_step}")
        if self.start_fraction is not None and not 0 <= self.start_fraction <= 1:
            raise ValueError(f"adversarial.start_fraction must be in [0, 1] (a share of max_steps), got "
                             f"{self.start_fraction}")

    @property
    def start_key(self) -> str:
        """The key that set the switch, with its value, for messages."""
        if self.start_step is not None:
            return f"adversarial.start_step={self.start_step}"
        return f"adversarial.start_fraction={DEFAULT_START_FRACTION if self.start_fraction is None else self.start_fraction}"


@dataclass
class PretrainConfig:
    output: str = "runs/pretrain"
    seed: int = 42
    max_steps: int = 1000  # optimizer updates of the whole schedule
    stop_after: int | None = None  # stop after this many steps with a checkpoint, as a preempted job would
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 20
    save_every: int = 500
    keep_checkpoints: int = 2
    max_bad_steps: int = 20  # consecutive skipped updates (non-finite loss) that stop the run
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    adversarial: PretrainAdversarial = field(default_factory=PretrainAdversarial)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if self.seed < 0:
            raise ValueError("seed must be >= 0 (numpy's generators take no negative seed)")
        if self.keep_checkpoints < 1:
            raise ValueError("keep_checkpoints must be at least 1 (--resume needs one)")
        for key in ("log_every", "eval_every", "save_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1")
        why = self.adversarial.refusal(self.engine.grad_accum, zero_stage(self.engine, self.optim))
        if why:
            raise ValueError(why)

    def switch_step(self) -> int:
        """The masked-LM steps before the adversarial phase (the loop's 0-based index of its first step)."""
        a = self.adversarial
        if a.start_step is not None:
            return a.start_step
        fraction = DEFAULT_START_FRACTION if a.start_fraction is None else a.start_fraction
        return int(round(fraction * self.max_steps))


def load_pretrain_config(path: str | None, overrides: list[str], flags: dict[str, Any]) -> PretrainConfig:
    """The config from YAML (or a preset's name), overrides and flags. A prepared corpus (`data.prepared`, the
    --data-dir flag) stands in for the preset's files, and lends the tokenizer and block size its manifest
    records to what the command line leaves unset (said in one line)."""
    from alum.pretrain.data import take_from_manifest  # torch: only for a run that trains

    cfg = load_config(PretrainConfig, path, overrides, flags, kind="pretrain")
    on_command_line = {*flags, *(parse_override(o)[0] for o in overrides)}
    if "data.prepared" in flags and "data.files" not in on_command_line:
        cfg.data.files = []  # --data-dir stands in for the preset's files; with --files too, they are checked
    if cfg.data.prepared is not None:
        taken = take_from_manifest(cfg.data, on_command_line)
        if taken:
            say(f"from the prepared corpus's manifest: {', '.join(taken)}")
    return cfg


@dataclass
class PrepareConfig:
    """What `alum prepare` is asked: a corpus tokenised and packed once, for `alum pretrain --data-dir`."""

    tokenizer: str
    files: list[str]  # files, globs or directories
    output: str  # the prepared corpus's directory
    block_size: int = 128
    whole_word: bool = False  # keep token offsets, for masking.whole_word
    text_column: str = "text"
    strict: bool = False  # stop at the first undecodable line
    num_proc: int = 0  # 0: every core
    overwrite: bool = False
    progress: bool = True
