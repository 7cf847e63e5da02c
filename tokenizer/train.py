"""Training a BPE tokenizer from a corpus: check everything that can be checked, stream the corpus through
the `tokenizers` trainer, check the result, and write the output directory in one piece."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from alum.config import save_config
from alum.corpus import ReadStats, disk_bytes, ensure_nonempty, iter_texts, resolve_files
from alum.errors import UserError, writing
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.export import save_hf
from alum.tokenizer.interruptible import train_interruptibly
from alum.tokenizer.output import check_target, staged_directory
from alum.tokenizer.pipeline import add_post_processor, build_tokenizer, build_trainer, specials_of
from alum.tokenizer.progress import CorpusProgress

OUTPUT_FILES = ("tokenizer.json", "tokenizer_config.json", "config.yaml", "stats.json")


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run(cfg: TokenizerConfig, warn: Callable[[str], None] = _stderr_warning) -> dict:
    """The tokenizer stage's entry: train, save to `cfg.output.dir`, and return what stats.json holds. Bad input
    raises UserError before the output directory is touched; warnings go to `warn`."""
    if not cfg.corpus.files:
        raise UserError("no corpus files given (--files PATH... or corpus.files=...)")
    if not cfg.output.dir:
        raise UserError("no output directory given (--output DIR or output.dir=...)")
    files = resolve_files(cfg.corpus.files, split=cfg.corpus.split, split_key="corpus.split")
    target = Path(cfg.output.dir)
    check_target(target, cfg.output.overwrite)
    ensure_nonempty(files, cfg.corpus.text_column)
    _warn_round_trip(cfg, warn)

    tokenizer, trainer = build_tokenizer(cfg), build_trainer(cfg)
    stats = ReadStats()
    started = time.perf_counter()
    with staged_directory(target, cfg.output.overwrite) as stage:
        with CorpusProgress(disk_bytes(files), cfg.progress) as progress:
            texts = iter_texts(
                files,
                text_column=cfg.corpus.text_column,
                strict=cfg.corpus.strict,
                sample=cfg.corpus.sample,
                seed=cfg.corpus.seed,
                stats=stats,
                progress=progress.advance,
            )
            train_interruptibly(tokenizer, trainer, texts, when_read=progress.start_merging)
        training_seconds = time.perf_counter() - started
        _check_trained(tokenizer, cfg, stats)
        add_post_processor(tokenizer, cfg)
        with writing("the tokenizer", target):  # a full disk: one line, and the old output stays
            save_hf(tokenizer, cfg, stage)
            save_config(cfg, stage / "config.yaml")
            report = _report(tokenizer, cfg, files, stats, training_seconds, time.perf_counter() - started)
            (stage / "stats.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _warn_after(report, cfg, stats, warn)
    return report


def _warn_round_trip(cfg: TokenizerConfig, warn: Callable[[str], None]) -> None:
    if cfg.bpe.algorithm != "byte-level":
        return
    if cfg.normalize.active:
        warn("normalisation is on: decode(encode(text)) gives the normalised text, not the original")
    if cfg.bpe.add_prefix_space:
        warn("bpe.add_prefix_space is on: decode(encode(text)) starts with an extra space")


def _check_trained(tokenizer, cfg: TokenizerConfig, stats: ReadStats) -> None:
    if stats.lines == 0:
        raise UserError(
            f"no text left to train on: corpus.sample={cfg.corpus.sample} kept none of the lines; raise it"
        )
    size = tokenizer.get_vocab_size()
    if size > cfg.bpe.vocab_size:
        # The trainer never drops characters to meet vocab_size: it returns the alphabet and no merges.
        specials = len(specials_of(cfg).tokens)
        suffix = cfg.bpe.end_of_word_suffix
        vocab = tokenizer.get_vocab()
        word_final = sum(1 for token in vocab if token.endswith(suffix) and len(token) == len(suffix) + 1)
        raise UserError(
            f"bpe.vocab_size {cfg.bpe.vocab_size} is smaller than the corpus alphabet plus special tokens: "
            f"{size - specials - word_final} characters, {word_final} of them also word-final with '{suffix}', "
            f"and {specials} special tokens make {size}; raise bpe.vocab_size or set bpe.limit_alphabet"
        )


def _report(tokenizer, cfg: TokenizerConfig, files, stats: ReadStats, training: float, total: float) -> dict:
    return {
        "algorithm": cfg.bpe.algorithm,
        "special_tokens": cfg.special_tokens,
        "vocab_size": tokenizer.get_vocab_size(),
        "vocab_size_requested": cfg.bpe.vocab_size,
        "training_seconds": round(training, 3),  # reading and training: the corpus is streamed through both
        "total_seconds": round(total, 3),
        "corpus": {
            "files": len(files),
            "disk_bytes": disk_bytes(files),
            "lines": stats.lines,
            "text_bytes": stats.bytes,
            "empty_lines": stats.empty_lines,
            "bad_lines": stats.bad_lines,
            "first_bad": stats.first_bad or None,
            "sample": cfg.corpus.sample,
        },
        "versions": {"tokenizers": version("tokenizers"), "transformers": version("transformers")},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _warn_after(report: dict, cfg: TokenizerConfig, stats: ReadStats, warn: Callable[[str], None]) -> None:
    if stats.bad_lines:
        warn(
            f"skipped {stats.bad_lines} line(s) with undecodable bytes (first at {stats.first_bad}); "
            "--strict stops at the first instead"
        )
    if report["vocab_size"] < cfg.bpe.vocab_size:
        warn(
            f"the vocabulary has {report['vocab_size']} tokens, fewer than the {cfg.bpe.vocab_size} asked for: "
            f"no pair left occurs bpe.min_frequency={cfg.bpe.min_frequency} times in this corpus"
        )
