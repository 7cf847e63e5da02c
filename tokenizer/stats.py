"""How a tokenizer does on a corpus: vocabulary size, unknown-token rate, bytes per token, tokens per word.

Works on any Hugging Face tokenizer directory (ours or not), so tokenizers can be compared on the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alum.corpus import ReadStats, disk_bytes, ensure_nonempty, iter_texts, resolve_files
from alum.errors import UserError
from alum.io.hf_dirs import load_tokenizer
from alum.tokenizer.progress import CorpusProgress

BATCH = 1000  # texts encoded per call: large enough for the Rust side to work in parallel


@dataclass(frozen=True)
class CorpusStats:
    """What `alum tokenizer stats` reports: `measure`'s figures, and the lines skipped as undecodable."""

    tokenizer: str  # the directory measured
    kind: str  # its class, as transformers loaded it
    figures: dict

    def as_json(self) -> dict:
        return {"tokenizer": self.tokenizer, **self.figures}

    def table(self) -> str:
        return format_table(f"{self.tokenizer} ({self.kind})", self.figures)


def corpus_stats(tokenizer_dir: str | Path, files: list[str], *, text_column: str = "text", sample: float = 1.0,
                 strict: bool = False, progress: bool = True, warn: Callable[[str], None]) -> CorpusStats:
    """Any Hugging Face tokenizer directory measured on a corpus (files, globs or directories), with a progress
    bar in bytes read; a line skipped for undecodable bytes is counted and said through `warn`."""
    if not 0.0 < sample <= 1.0:
        raise UserError(f"--sample must be in (0, 1], got {sample}")
    tokenizer = load_tokenizer(tokenizer_dir, "--tokenizer")
    paths = resolve_files(files)
    ensure_nonempty(paths, text_column)
    read = ReadStats()
    with CorpusProgress(disk_bytes(paths), enabled=progress) as bar:
        texts = iter_texts(paths, text_column=text_column, strict=strict, sample=sample, stats=read,
                           progress=bar.advance)
        figures = measure(tokenizer, texts)
    figures["bad_lines"] = read.bad_lines
    if read.bad_lines:
        warn(f"skipped {read.bad_lines} line(s) with undecodable bytes (first at {read.first_bad})")
    return CorpusStats(str(tokenizer_dir), type(tokenizer).__name__, figures)


def measure(tokenizer, texts: Iterable[str]) -> dict:
    """Encode `texts` without special tokens and count what the stats report."""
    backend = _untruncated(tokenizer.backend_tokenizer) if tokenizer.is_fast else None
    unk = _unk_id(tokenizer, backend)
    counts = {"texts": 0, "bytes": 0, "words": 0, "tokens": 0, "unk_tokens": 0}
    batch: list[str] = []

    def flush() -> None:
        if backend is not None:  # the Rust tokenizer directly: parallel, and no length warnings
            encoded = [e.ids for e in backend.encode_batch(batch, add_special_tokens=False)]
        else:
            encoded = tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        for text, ids in zip(batch, encoded):
            counts["texts"] += 1
            counts["bytes"] += len(text.encode("utf-8"))
            counts["words"] += len(text.split())
            counts["tokens"] += len(ids)
            if unk is not None:
                counts["unk_tokens"] += ids.count(unk)
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    tokens = counts["tokens"]
    return {
        "vocab_size": len(tokenizer),
        **counts,
        "unk_rate": counts["unk_tokens"] / tokens if tokens else 0.0,
        "bytes_per_token": counts["bytes"] / tokens if tokens else 0.0,
        "tokens_per_word": tokens / counts["words"] if counts["words"] else 0.0,
    }


def _untruncated(backend):
    """A copy of the Rust tokenizer without the truncation or padding its tokenizer.json may carry (many
    published ones truncate at 128 or 512 tokens, which would cut every long line's count short)."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _unk_id(tokenizer, backend) -> int | None:
    """The unknown token's id; from the model itself where transformers was not told (a bare tokenizer.json)."""
    if tokenizer.unk_token_id is not None or backend is None:
        return tokenizer.unk_token_id
    model = backend.model
    token = getattr(model, "unk_token", None)  # BPE, WordPiece, WordLevel
    if token:
        return backend.token_to_id(token)
    return getattr(model, "unk_id", None)  # Unigram


def format_table(name: str, result: dict) -> str:
    rows = [
        ("tokenizer", name),
        ("vocab size", f"{result['vocab_size']:,}"),
        ("texts", f"{result['texts']:,}"),
        ("words", f"{result['words']:,}"),
        ("tokens", f"{result['tokens']:,}"),
        ("unknown tokens", f"{result['unk_tokens']:,} ({100 * result['unk_rate']:.3f}%)"),
        ("bytes per token", f"{result['bytes_per_token']:.3f}"),
        ("tokens per word", f"{result['tokens_per_word']:.3f}"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
