"""Pretrained models as plain Hugging Face directories: the final model at the end of a run, and any checkpoint
of a run (`alum export`), in one process with no launcher, from the files DeepSpeed wrote, whatever the ZeRO
stage. Both are written the same way: weights, config and the tokenizer, its model_max_length the model's
positions, staged beside the target and put in place whole.

What DeepSpeed writes in `step-N/engine/` (DeepSpeed 0.19): under ZeRO 0, 1 and 2, `mp_rank_00_model_states.pt`,
whose `module` is the whole module's state dict as the engine held it (its dtype, e.g. bf16, not the fp32
master copy); under ZeRO-3, that file is `zero_pp_rank_0_mp_rank_00_model_states.pt` and its `module` holds
empty placeholders, the weights being partitioned across the ranks' `*_optim_states.pt` as fp32 masters:
DeepSpeed's own `get_fp32_state_dict_from_zero_checkpoint` gathers them, and they are cast to the dtype the
module held (the placeholders keep it), which is what the engine computed with."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from alum.config import load_config
from alum.errors import UserError, writing
from alum.io.hf_dirs import load_tokenizer, quiet_transformers, save_tokenizer_for
from alum.io.model_card import ModelCard, write_card
from alum.io.publish import check_directory, publish, staging
from alum.training.checkpoint import ENGINE_TAG, Checkpointer
from alum.pretrain.card import pretrain_card
from alum.pretrain.config import PretrainConfig

# The module states file of rank 0: under ZeRO 0-2 it holds the weights, under ZeRO-3 placeholders.
MODULE_STATES = "mp_rank_00_model_states.pt"
ZERO3_MODULE_STATES = "zero_pp_rank_0_mp_rank_00_model_states.pt"


# The run directory keeps the tokenizer the run trained with, so that any of its checkpoints can be exported
# with it even when the directory that data.tokenizer names has moved or changed since.
RUN_TOKENIZER = "tokenizer"


def save_run_tokenizer(model, tokenizer, run: Path) -> None:
    """The run's tokenizer in `RUN/tokenizer/`, put in place whole."""
    with _whole(run / RUN_TOKENIZER, "the tokenizer") as staged:
        save_tokenizer_for(model, tokenizer, staged)


def write_hf_dir(module, tokenizer, target: Path, card: Callable[[Path], ModelCard] | None = None) -> None:
    """`module` and `tokenizer` as a plain HF directory at `target` with the model card `card(staged directory)`
    makes, put in place whole (an earlier one there is replaced only once the new one is complete)."""
    with _whole(target, "the model") as staged, quiet_transformers():
        module.save_pretrained(staged, safe_serialization=True)
        save_tokenizer_for(module, tokenizer, staged)
        if card is not None:  # it reads the saved weights: their family and size
            write_card(staged, card(staged))


@contextlib.contextmanager
def _whole(target: Path, what: str) -> Iterator[Path]:
    """A directory to write `target` into, published at `target` when the block ends; on failure nothing is
    left beside it, and a disk that refuses the write is one line naming `what` and `target`."""
    staged = staging(target)
    with writing(what, target):
        try:
            yield staged
            publish(staged, target)
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def export_checkpoint(checkpoint: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """The checkpoint `RUN/checkpoints/step-N/` as a plain HF directory at `output`, with the run's tokenizer
    (`RUN/tokenizer/`); returns `output`. Bad input (not a checkpoint, an incomplete one, an output that exists
    without `overwrite`) raises UserError before anything is written."""
    checkpoint, output = Path(checkpoint), Path(output)
    run = check_checkpoint(checkpoint)
    check_output(output, checkpoint, run, overwrite)
    cfg = load_config(PretrainConfig, run / "config.yaml")
    tokenizer, source = run_tokenizer(cfg, run)
    model = architecture(cfg, tokenizer)
    load_weights(model, engine_weights(checkpoint), checkpoint, source)
    step = int(checkpoint.name.split("-")[-1]) if checkpoint.name.split("-")[-1].isdigit() else 0
    write_hf_dir(model, tokenizer, output, lambda staged: pretrain_card(cfg, staged, step, run))
    return output


def check_checkpoint(checkpoint: Path) -> Path:
    """The run directory of `checkpoint`, once it is known to be a complete pretraining checkpoint."""
    if not checkpoint.exists():
        raise UserError(f"checkpoint '{checkpoint}' not found")
    if not checkpoint.is_dir():
        raise UserError(f"'{checkpoint}' is a file, not a checkpoint directory (RUN/checkpoints/step-N)")
    if checkpoint.name.endswith(".partial"):
        latest = Checkpointer(checkpoint.parent).latest()
        instead = f": export a complete one, e.g. {latest}" if latest else ""
        raise UserError(f"'{checkpoint}' is an incomplete checkpoint (a run stopped while writing it){instead}")
    engine = checkpoint / ENGINE_TAG
    if not any((engine / name).is_file() for name in (MODULE_STATES, ZERO3_MODULE_STATES)):
        latest = Checkpointer(checkpoint / "checkpoints").latest()
        hint = f"a run directory: name one of its checkpoints, e.g. {latest}" if latest else \
            "name a pretraining checkpoint, RUN/checkpoints/step-N"
        raise UserError(f"'{checkpoint}' is not a pretraining checkpoint (no {ENGINE_TAG}/{MODULE_STATES}): {hint}")
    run = checkpoint.parent.parent
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run / 'config.yaml'} not found: the checkpoint's run directory holds no config, so the "
                        "model's shape and tokenizer are unknown")
    return run


def check_output(output: Path, checkpoint: Path, run: Path, overwrite: bool) -> None:
    """Never lose work: an output that exists is replaced only with `overwrite`, and never when it is, or holds,
    the checkpoint being exported."""
    check_directory(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UserError(f"--output {output} already exists: pass --overwrite to replace it")
    mine, theirs = output.resolve(), checkpoint.resolve()
    if mine == theirs or mine in theirs.parents or theirs in mine.parents or mine == run.resolve():
        raise UserError(f"--output {output} would replace the checkpoint {checkpoint} or its run: export elsewhere")


def run_tokenizer(cfg: PretrainConfig, run: Path):
    """The tokenizer the run trained with, and where it was found: the copy in the run directory, or for a run
    written before runs kept one, the directory its config names."""
    if (run / RUN_TOKENIZER).is_dir():
        return load_tokenizer(run / RUN_TOKENIZER), run / RUN_TOKENIZER
    config = run / "config.yaml"
    if cfg.data.tokenizer is None:
        raise UserError(f"{config}: data.tokenizer is not set and the run directory holds no {RUN_TOKENIZER}/, "
                        "so the run's tokenizer is unknown")
    return load_tokenizer(cfg.data.tokenizer, f"data.tokenizer in {config}"), cfg.data.tokenizer


def architecture(cfg: PretrainConfig, tokenizer):
    """The run's model, built as `alum pretrain` built it (`pretrain/model.py`), with weights still to load."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    from alum.io.hf_dirs import check_model_dir
    from alum.pretrain.model import build_config

    if cfg.model.path is None:
        config = build_config(cfg.model, tokenizer, cfg.data.block_size)
    else:
        config = AutoConfig.from_pretrained(check_model_dir(cfg.model.path, "model.path"), local_files_only=True)
    return AutoModelForMaskedLM.from_config(config)


def engine_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The module's weights as the engine held them when it wrote `checkpoint`, read in this process; files
    that cannot be read (cut short, corrupt, a rank's partition missing) are one line naming them."""
    try:
        with _quiet_deepspeed():
            return _engine_weights(checkpoint)
    except Exception as err:  # noqa: BLE001 - torch.load and DeepSpeed's reader raise many types
        text = str(err).strip()
        raise UserError(f"{checkpoint / ENGINE_TAG}: cannot read the engine's weights "
                        f"({type(err).__name__}: {text.splitlines()[0] if text else 'no detail'})") from None


def _engine_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    engine = checkpoint / ENGINE_TAG
    if (engine / MODULE_STATES).is_file():  # ZeRO 0, 1, 2: the whole module, in its own dtype
        return torch.load(engine / MODULE_STATES, map_location="cpu", weights_only=False)["module"]
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    placeholders = torch.load(engine / ZERO3_MODULE_STATES, map_location="cpu", weights_only=False)["module"]
    masters = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag=ENGINE_TAG)
    return {k: v.to(placeholders[k].dtype) if k in placeholders else v for k, v in masters.items()}


@contextlib.contextmanager
def _quiet_deepspeed() -> Iterator[None]:
    """DeepSpeed talks while it reads: a warning on import where it finds no GPU (unpickling the module states
    imports it too), a line naming the version that wrote the files, a progress bar over them. The command's
    one line says what was done, so theirs go nowhere; an error still ends in one line of ours."""
    def errors_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    logger = logging.getLogger("DeepSpeed")  # DeepSpeed's own, which keeps a filter added before its import
    logger.addFilter(errors_only)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import deepspeed  # noqa: F401 - here, quietly: saving the model would import it (accelerate does)

            yield
    finally:
        logger.removeFilter(errors_only)


def load_weights(model, weights: dict[str, torch.Tensor], checkpoint: Path, tokenizer) -> None:
    """Every parameter of `model` from `weights`, to the bit; a checkpoint of another shape is one line."""
    embeddings = model.get_input_embeddings().weight
    name = next(n for n, p in model.named_parameters() if p is embeddings)
    if name in weights and weights[name].shape[0] != embeddings.shape[0]:
        raise UserError(f"{checkpoint} has {weights[name].shape[0]} embedding rows but the run's tokenizer {tokenizer} "
                        f"gives {embeddings.shape[0]}: the tokenizer was changed after the run")
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:
        raise UserError(f"{checkpoint} does not fit the model its run's config.yaml describes: "
                        f"{str(err).strip().splitlines()[-1].strip()}") from None
    missing = [k for k in missing if k not in _tied(model)]
    if missing or unexpected:
        raise UserError(f"{checkpoint} does not fit the model its run's config.yaml describes: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    dtypes = {t.dtype for t in weights.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())


def _tied(model) -> set[str]:
    """Names of parameters that share their tensor with another (the decoder tied to the word embeddings)."""
    seen, tied = {}, set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if param.data_ptr() in seen:
            tied.add(name)
        seen.setdefault(param.data_ptr(), name)
    return tied
