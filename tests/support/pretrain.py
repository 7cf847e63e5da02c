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
        "engine.micro_batch_size=4", "optim.warmup=2", "adversarial.start=3",
    ]
    return load_config(PretrainConfig, CONFIGS / "pretrain/tiny.yaml", base + [f"{k}={v}" for k, v in overrides.items()])


def pretrain_args(tokenizer: Path, output: Path, micro: int, stage: int, *extra: str) -> list[str]:
    """`alum pretrain` arguments for 8 steps (4 standard, 4 ALUM) on the sample, under ZeRO `stage`."""
    return [
        "pretrain", "--config", "tiny", "--tokenizer", str(tokenizer), "--output", str(output),
        "--files", str(SAMPLE), "--deepspeed", f"zero{stage}", "--max-steps", "8",
        "adversarial.start=4", "data.block_size=64", "data.validation=16", "log_every=1", "eval_every=4",
        "eval_batches=2", "save_every=3", f"engine.micro_batch_size={micro}", "optim.lr=2e-3", "optim.warmup=0",
        "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, "
        "hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}",
        *extra,
    ]
