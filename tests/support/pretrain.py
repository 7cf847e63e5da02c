"""The tiny pretraining run the integration tests start: in this process (a config) or as CLI arguments."""

from __future__ import annotations

from pathlib import Path

from alum.config import load_config
from alum.pretrain.config import PretrainConfig
from support.paths import CONFIGS, SAMPLE


def tiny_config(tmp_path, tokenizer_dir, corpus, **overrides) -> PretrainConfig:
    base = [
        f"output={tmp_path / 'run'}", f"data.tokenizer={tokenizer_dir}", f"data.files=[{corpus}]",
        "data.block_size=32", "data.validation=8", f"data.cache_dir={tmp_path / 'cache'}",
        "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}",
        "max_steps=6", "log_every=1", "eval_every=3", "eval_batches=2", "save_every=2",
        "engine.micro_batch_size=4", "optim.warmup=2", "adversarial.start_step=3",
    ]
    return load_config(PretrainConfig, CONFIGS / "pretrain/tiny.yaml", base + [f"{k}={v}" for k, v in overrides.items()])


def pretrain_args(tokenizer: Path, output: Path, micro: int, stage: int, *extra: str) -> list[str]:
    """`alum pretrain` arguments for 8 steps (4 standard, 4 ALUM) on the sample, under ZeRO `stage`."""
    return [
        "pretrain", "--config", "tiny", "--tokenizer", str(tokenizer), "--output", str(output),
        "--files", str(SAMPLE), "--deepspeed", f"zero{stage}", "--max-steps", "8",
        "adversarial.start_step=4", "data.block_size=64", "data.validation=16", "log_every=1", "eval_every=4",
        "eval_batches=2", "save_every=3", f"engine.micro_batch_size={micro}", "optim.lr=2e-3", "optim.warmup=0",
        "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, "
        "hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}",
        *extra,
    ]


def checkpoint_contents(path: Path) -> dict:
    """Everything a checkpoint directory holds, loaded: the engine's files (weights, optimizer moments,
    scheduler, step counters), every rank's random streams and the loop's state.pt."""
    import torch

    return {str(p.relative_to(path)): torch.load(p, weights_only=False) for p in sorted(path.rglob("*.pt"))}


def assert_same_state(a, b, where: str = "") -> None:
    """`a` and `b` equal to the bit, through dicts, lists and tuples of tensors, arrays and plain values."""
    import numpy as np
    import torch

    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where}: arrays differ"
    elif hasattr(a, "__dict__") and type(a).__eq__ is object.__eq__:  # e.g. DeepSpeed's loss scaler
        assert_same_state(vars(a), vars(b), where)
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_files(a: Path, b: Path, same_run: bool = True) -> None:
    """The same files, byte for byte; the model cards up to their provenance (the command and the date), and
    not at all for exports of one checkpoint from two places (`same_run` False: a card names its run)."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for path in b.iterdir():
        if path.name == "README.md":
            assert card_body(a) == card_body(b) or not same_run
        else:
            assert (a / path.name).read_bytes() == path.read_bytes(), path.name


def card_body(directory: Path) -> str:
    return (directory / "README.md").read_text(encoding="utf-8").split("## Provenance")[0]
