"""A prepared corpus on disk: a directory of Arrow shards of packed blocks and the manifest that says what
made them.

    DIR/manifest.json            written last: a directory without it is an unfinished build
    DIR/shards/part-00000.arrow  one per part of the corpus, in corpus order

Why Arrow files (the format of `datasets`' own cache): `datasets.Dataset.from_file` memory-maps them, so
opening a corpus of hundreds of gigabytes costs milliseconds and no memory, a row is read by index (the
map-style order resumes by position alone), and each shard can be written a record batch at a time by
one worker, never held whole. The manifest records the tokenizer (a hash of its files), the block size,
the columns and the source files (sizes and modification times); a run whose config disagrees is refused
with the key to change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from alum.errors import UserError

MANIFEST = "manifest.json"
FORMAT = "alum-prepared-corpus/1"
# What of a tokenizer directory decides tokenisation (a model directory's weights do not).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")


def tokenizer_hash(directory: str | Path) -> str:
    """sha256 over the tokenizer's files (names and bytes), so a retrained tokenizer in the same place is
    told apart from the one the shards were made with."""
    digest = hashlib.sha256()
    if Path(directory).is_file():  # a bare tokenizer.json
        digest.update(Path(directory).read_bytes())
    for name in _TOKENIZER_FILES:
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def sources(files: list[Path]) -> list[dict[str, Any]]:
    """The identity of each source file as the manifest records it."""
    return [{"path": str(Path(f).resolve()), "size": Path(f).stat().st_size, "mtime_ns": Path(f).stat().st_mtime_ns}
            for f in files]


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise UserError(f"data.prepared: {directory} is not a corpus prepared by `alum prepare` ({FORMAT})")
    return manifest


def check(manifest: dict[str, Any], directory: str | Path, *, tokenizer: str, block_size: int, whole_word: bool,
          files: list[Path] | None) -> None:
    """Refuse, naming the config key, shards that were made otherwise than this run asks."""
    made = f"the corpus in {directory} was prepared with"
    redo = "prepare it again (alum prepare) or change the key"
    if manifest["tokenizer"] != tokenizer_hash(tokenizer):
        raise UserError(f"data.tokenizer: {made} another tokenizer (its files differ from {tokenizer}); {redo}")
    if manifest["block_size"] != block_size:
        raise UserError(f"data.block_size: {made} block_size {manifest['block_size']}, this run asks {block_size}; {redo}")
    if whole_word and not manifest["whole_word"]:
        raise UserError(f"masking.whole_word: {made}out token offsets, which whole-word masking needs; "
                        "prepare it with --whole-word")
    if files:
        theirs = [(s["path"], s["size"], s["mtime_ns"]) for s in manifest["sources"]]
        ours = [(s["path"], s["size"], s["mtime_ns"]) for s in sources(files)]
        if theirs != ours:
            changed = next((o[0] for o, t in zip(ours, theirs) if o != t), None) if len(ours) == len(theirs) else None
            what = f"{changed} changed since" if changed else f"{len(ours)} file(s) here, {len(theirs)} when it was"
            raise UserError(f"data.files: {what} prepared in {directory}; prepare it again, or set data.files=[] "
                            "to train from the prepared corpus whatever its sources")


def load(directory: str | Path):
    """The blocks of a prepared corpus as one memory-mapped datasets.Dataset, in corpus order."""
    import datasets

    manifest = read_manifest(directory)
    if manifest is None:
        raise UserError(f"data.prepared: {directory} holds no prepared corpus ({MANIFEST} missing; "
                        "an interrupted `alum prepare` leaves none)")
    parts = [datasets.Dataset.from_file(str(Path(directory) / "shards" / s["file"]))
             for s in manifest["shards"] if s["blocks"] > 0]
    if not parts:
        raise UserError(f"data.prepared: {directory} holds no block (the corpus is shorter than one block)")
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
