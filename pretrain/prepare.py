"""Preparing a corpus once: read, tokenise and pack it into Arrow shards (pretrain/shards.py), on every core.

The corpus is cut into parts before anything is read: byte ranges of ~`part_bytes` of each plain text or
JSON-lines file (a line belongs to the range it starts in), a whole file for what cannot be cut (.gz, CSV,
parquet). Each worker process reads its parts itself, tokenises them with the `tokenizers` backend and
writes each part's blocks to its own shard a record batch at a time: no single reader feeds the workers,
and memory is a worker's tokenizer plus one batch of text and blocks, whatever the corpus size. The parts
depend on the files and `part_bytes` only, so the shards are the same for any number of processes.

Workers count the bytes they read into one shared counter; the parent draws it as a progress bar in bytes
of the files on disk. The build goes to DIR.partial and is renamed into place with its manifest, so a
killed build leaves no directory that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alum.corpus import ReadStats, disk_bytes, ensure_nonempty, iter_texts, read_range, resolve_files, splittable
from alum.errors import UserError, writing
from alum.io.hf_dirs import load_tokenizer, unknown_share_warning
from alum.io.publish import check_directory
from alum.pretrain import shards
from alum.pretrain.config import PrepareConfig
from alum.pretrain.packing import COLUMNS, OFFSETS, Packer

PART_BYTES = 64 << 20  # a shard per 64 MB of text: enough parts to keep every core busy, shards of ~30 MB
_TEXTS_PER_BATCH = 1000
_BLOCKS_PER_WRITE = 2048


@dataclass(frozen=True)
class Part:
    """What one worker reads: bytes [start, end) of a splittable file, or the whole file (start = end = -1)."""

    file: str
    start: int = -1
    end: int = -1


def run(cfg: PrepareConfig) -> dict[str, Any]:
    """`alum prepare`'s stage: every input checked (the errors name the command's flags), then the prepared
    corpus built in `cfg.output`; returns its manifest. An output that holds something is replaced only with
    `cfg.overwrite`."""
    if cfg.block_size < 8:
        raise UserError("--block-size must be at least 8")
    load_tokenizer(cfg.tokenizer, "--tokenizer")  # here, so a bad directory's error names the flag
    files = resolve_files(cfg.files)
    ensure_nonempty(files, cfg.text_column)
    output = Path(cfg.output)
    check_directory(output)
    if output.exists() and any(output.iterdir()) and not cfg.overwrite:
        raise UserError(f"--output {output} is not empty: pass --overwrite to replace it")
    return prepare(files, cfg.tokenizer, output, block_size=cfg.block_size, whole_word=cfg.whole_word,
                   text_column=cfg.text_column, strict=cfg.strict, num_proc=cfg.num_proc, progress=cfg.progress)


def describe(manifest: dict[str, Any], output: str | Path) -> str:
    """One line: what was built, from what, how; and how to train from it."""
    return (f"prepared {output}: {manifest['blocks']:,} blocks of {manifest['block_size']} tokens from "
            f"{manifest['text_bytes'] / 1e6:,.1f} MB of text ({manifest['texts']:,} texts, "
            f"{skipped_lines(manifest)}) in {len(manifest['shards'])} shard(s), "
            f"{manifest['processes']} process(es), {manifest['seconds']:.1f}s; train with --data-dir {output}")


def plan(files: list[Path], part_bytes: int = PART_BYTES) -> list[Part]:
    parts = []
    for f in files:
        size = Path(f).stat().st_size
        if splittable(Path(f)) and size > part_bytes:
            cuts = list(range(0, size, part_bytes)) + [size]
            parts += [Part(str(f), a, b) for a, b in zip(cuts, cuts[1:])]
        elif splittable(Path(f)):
            parts.append(Part(str(f), 0, size))
        else:
            parts.append(Part(str(f)))
    return parts


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prepare(files: list[Path], tokenizer_dir: str, output: str | Path, *, block_size: int, whole_word: bool = False,
            text_column: str = "text", strict: bool = False, num_proc: int = 0, part_bytes: int = PART_BYTES,
            progress: bool = True) -> dict[str, Any]:
    """Build the prepared corpus in `output` and return its manifest. `num_proc` 0: every core."""
    output = Path(output)
    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_dir, "data.tokenizer")
    serialised = tokenizer.backend_tokenizer.to_str()
    parts = plan(files, part_bytes)
    processes = max(1, min(num_proc or available_cores(), len(parts)))
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "shards").mkdir(parents=True)
    jobs = [(i, p, serialised, tokenizer.unk_token_id, block_size, whole_word, text_column, strict, str(partial / "shards"))
            for i, p in enumerate(parts)]
    total = disk_bytes(files)
    bar = _bar(total, progress)
    try:
        with writing("the prepared corpus", output):
            if processes == 1:  # in this process: no start-up cost, and what a test or a profiler sees
                _init_worker(None)
                results = [_build_part(job, bar.update) for job in jobs]
            else:
                results = _in_pool(jobs, processes, bar)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        bar.close()
    manifest = {
        "format": shards.FORMAT,
        "tokenizer": shards.tokenizer_hash(tokenizer_dir),
        "tokenizer_dir": str(Path(tokenizer_dir).resolve()),
        "block_size": block_size,
        "whole_word": whole_word,
        "text_column": text_column,
        "sources": shards.sources(files),
        "shards": [r["shard"] for r in results],
        "blocks": sum(r["shard"]["blocks"] for r in results),
        "tokens": sum(r["shard"]["blocks"] for r in results) * block_size,
        "text_bytes": sum(r["bytes"] for r in results),
        "texts": sum(r["lines"] for r in results),
        "bad_lines": sum(r["bad_lines"] for r in results),
        "first_bad": next((r["first_bad"] for r in results if r["first_bad"]), ""),
        "text_tokens": sum(r["text_tokens"] for r in results),
        "unknown_tokens": sum(r["unknown_tokens"] for r in results),
        "unk_token": tokenizer.unk_token,
        "processes": processes,
        "seconds": round(time.perf_counter() - started, 3),
        "built_by": {"host": os.uname().nodename, "pid": os.getpid(), "rank": int(os.environ.get("RANK", 0))},
    }
    try:
        check_not_empty(manifest)
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)  # before it replaces anything: an earlier corpus there stays
        raise
    (partial / shards.MANIFEST).write_text(json.dumps(manifest, indent=1))
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
    return manifest


def _bar(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="preparing", disable=not show,
                dynamic_ncols=True, leave=False)  # gone when done: the summary line says what was built


def _in_pool(jobs, processes: int, bar) -> list[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, wait

    # spawn, not fork: the parent may hold a tokenizer whose thread pool a forked child would inherit locked.
    # An executor, not a Pool: a worker that dies breaks it with an error instead of being restarted forever.
    context = mp.get_context("spawn")
    counter = context.Value("q", 0, lock=False)  # bytes read, summed over workers (only workers add)
    lock = context.Lock()
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker,
                             initargs=((counter, lock),)) as pool:
        pending = [pool.submit(_build_part, job) for job in jobs]
        shown = 0
        while wait(pending, timeout=0.2).not_done:
            bar.update(counter.value - shown)
            shown = counter.value
        bar.update(counter.value - shown)
        return [p.result() for p in pending]  # re-raises a worker's UserError here


_worker: dict[str, Any] = {}


def _init_worker(shared) -> None:
    _worker.clear()
    _worker["shared"] = shared
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per worker; the pool is the parallelism


def _report(n: int) -> None:
    counter, lock = _worker["shared"]
    with lock:
        counter.value += n


def _build_part(job, progress=None) -> dict[str, Any]:
    import pyarrow as pa
    from tokenizers import Tokenizer

    index, part, serialised, unk_id, block_size, whole_word, column, strict, directory = job
    if "tokenizer" not in _worker:  # once per worker process
        tok = Tokenizer.from_str(serialised)
        tok.no_truncation()
        tok.no_padding()
        _worker["tokenizer"] = tok
    progress = progress or (_report if _worker.get("shared") else None)
    packer = Packer(_worker["tokenizer"], block_size, whole_word, unk_id)
    stats = ReadStats()
    path = Path(part.file)
    if part.start >= 0:
        texts = (t for _, t in read_range(path, part.start, part.end, text_column=column, strict=strict, stats=stats,
                                          progress=progress))
    else:
        texts = iter_texts([path], text_column=column, strict=strict, stats=stats, progress=progress)
    names = list(COLUMNS) + (list(OFFSETS) if whole_word else [])
    types = [pa.int32(), pa.int8()] + [pa.int32()] * (len(names) - 2)
    schema = pa.schema([pa.field(n, pa.list_(t)) for n, t in zip(names, types)])
    name = f"part-{index:05d}.arrow"
    blocks_written, waiting, batch = 0, [], []
    with pa.OSFile(str(Path(directory) / name), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        def flush():
            nonlocal blocks_written, waiting
            if waiting:
                writer.write_batch(_record_batch(waiting, schema, block_size))
                blocks_written += len(waiting)
                waiting = []

        for text in texts:
            batch.append(text)
            if len(batch) == _TEXTS_PER_BATCH:
                waiting += packer.add(batch)
                batch = []
                if len(waiting) >= _BLOCKS_PER_WRITE:
                    flush()
        waiting += packer.add(batch)
        flush()
    return {"shard": {"file": name, "blocks": blocks_written, "source": part.file, "start": part.start, "end": part.end},
            "bytes": stats.bytes, "lines": stats.lines, "bad_lines": stats.bad_lines, "first_bad": stats.first_bad,
            "text_tokens": packer.tokens, "unknown_tokens": packer.unknown}


def _record_batch(blocks, schema, block_size: int):
    """Blocks as one Arrow record batch: each column a list array over one flat buffer (no copy per row)."""
    import numpy as np
    import pyarrow as pa

    stacked = np.stack(blocks)  # (n, rows, block_size)
    offsets = pa.array(np.arange(0, (len(blocks) + 1) * block_size, block_size, dtype=np.int32))
    arrays = []
    for row, field in enumerate(schema):
        values = pa.array(stacked[:, row, :].reshape(-1).astype(field.type.value_type.to_pandas_dtype()))
        arrays.append(pa.ListArray.from_arrays(offsets, values))
    return pa.record_batch(arrays, schema=schema)


def cached(files: list[Path], tokenizer_dir: str, cache_root: Path, *, block_size: int, whole_word: bool,
           text_column: str, strict: bool) -> Path:
    """Where the one-command path keeps the prepared form of these files: a directory named by everything
    that decides its content, so a second run with the same inputs finds it and an edited file does not."""
    import hashlib

    key = json.dumps([shards.tokenizer_hash(tokenizer_dir), block_size, whole_word, text_column, strict,
                      shards.sources(files), PART_BYTES])
    return cache_root / f"corpus-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def check_not_empty(manifest: dict[str, Any]) -> None:
    """A corpus that gives no block at all is an error, whatever was read (a binary file read as text yields
    a few "lines" that decode and many that do not)."""
    sources = manifest["sources"]
    names = ", ".join(s["path"] for s in sources[:3]) + (" ..." if len(sources) > 3 else "")
    if manifest["texts"] == 0:
        raise UserError(f"corpus is empty (no non-blank text in {names}; {skipped_lines(manifest)})")
    if manifest["blocks"] == 0:
        raise UserError(
            f"the corpus gives 0 blocks of {manifest['block_size']} tokens: {manifest['texts']:,} text(s) of "
            f"{manifest['text_tokens']:,} tokens in {names}, {skipped_lines(manifest)}; give more text (or text "
            "files: txt, jsonl, csv, tsv, parquet), or lower the block size (--block-size, data.block_size)"
        )


def skipped_lines(manifest: dict[str, Any]) -> str:
    """How many lines were skipped for undecodable bytes, and where the first was: said even when none."""
    count = manifest["bad_lines"]
    first = f", the first at {manifest['first_bad']}" if manifest.get("first_bad") else ""
    return f"{count:,} undecodable line{'s' if count != 1 else ''} skipped{first}"


def unknown_warning(manifest: dict[str, Any]) -> str | None:
    """The warning for a corpus the tokenizer mostly cannot represent (a manifest of an older alum has no count)."""
    if "unknown_tokens" not in manifest:
        return None
    return unknown_share_warning(manifest["unknown_tokens"], manifest["text_tokens"], manifest["unk_token"],
                                 "the corpus")
