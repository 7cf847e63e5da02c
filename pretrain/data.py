"""Pretraining data: text -> tokens -> fixed-length blocks (run_mlm's packing), and the orders in which
training reads them.

Map-style (default): the corpus is prepared once into Arrow shards (pretrain/prepare.py, `alum prepare`),
either by the user (data.prepared) or into a cache directory named by the files and the tokenizer, which a
second run finds. In a run of several processes rank 0 builds while the others wait. Batches are drawn in
a seeded order per epoch, so a position (epoch, batch) is all resume needs. Streaming (pretrain/stream.py):
texts are read, tokenised and packed on the fly; the checkpoint holds the reader's offset, the shuffle
buffer and its RNG, so resume seeks instead of re-reading.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alum.corpus import ensure_nonempty, resolve_files
from alum.errors import UserError
from alum.presets import data_file
from alum.pretrain import prepare, shards, stream
from alum.pretrain.config import DataConfig, MaskingConfig
from alum.pretrain.packing import Packer, backend, rows
from alum.training import distributed
from alum.training.metrics import say


def corpus_files(cfg: DataConfig) -> list[Path]:
    # a preset's relative data/... path is the sample shipped in the package when it is not here
    files = resolve_files([data_file(f) for f in cfg.files], split=cfg.split, split_key="data.split")
    ensure_nonempty(files, cfg.text_column)
    return files


def check_data(cfg: DataConfig, whole_word: bool) -> None:
    """What can be known about the corpus without tokenising it, checked before a model is built: the files
    exist and hold text; a prepared corpus matches this run."""
    if cfg.prepared is None:
        corpus_files(cfg)
    else:
        _prepared_manifest(cfg, whole_word, _checked_files(cfg))


def take_from_manifest(cfg: DataConfig, given: set[str]) -> list[str]:
    """A prepared corpus records its tokenizer and block size: the run takes them from its manifest unless
    `given` (the keys set on the command line) holds them, which are then checked against it. Returns
    what was taken, as `key=value`."""
    manifest = _read_prepared(cfg)
    taken = []
    if "data.tokenizer" not in given and cfg.tokenizer is None:
        cfg.tokenizer = manifest["tokenizer_dir"]
        taken.append(f"data.tokenizer={cfg.tokenizer}")
    if "data.block_size" not in given and cfg.block_size != manifest["block_size"]:
        cfg.block_size = manifest["block_size"]
        taken.append(f"data.block_size={cfg.block_size}")
    return taken


@dataclass
class Blocks:
    train: Any  # a datasets.Dataset (map-style) or a stream.BlockStream
    validation: Any  # a datasets.Dataset of held-out blocks
    train_size: int | None  # blocks, when known (map-style)


def build_blocks(cfg: DataConfig, tokenizer, whole_word: bool) -> Blocks:
    """The training blocks and the held-out validation blocks."""
    if cfg.streaming:
        return _streaming_blocks(cfg, tokenizer, whole_word)
    blocks = shards.load(prepared_corpus(cfg, whole_word))
    blocks = blocks.select_columns(["input_ids", "special_tokens_mask"] + (["offset_start", "offset_end"] if whole_word else []))
    n = len(blocks)
    held = cfg.validation if isinstance(cfg.validation, int) else int(round(cfg.validation * n))
    held = min(held, n - 1)
    if n - held < 1 or n < 2:
        raise UserError(
            f"the corpus gives {n} block(s) of {cfg.block_size} tokens; it needs at least 2 (one to train, one to "
            "validate): add text or lower data.block_size"
        )
    return Blocks(train=_Rows(blocks.select(range(n - held))),
                  validation=_Rows(blocks.select(range(n - held, n))) if held else None, train_size=n - held)


class _Rows:
    """A datasets.Dataset of blocks whose rows come out as the collator takes them (offsets as pairs)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.cache_files = dataset.cache_files

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, list]:
        row = self.dataset[i]
        if "offset_start" in row:
            row["offset_mapping"] = list(zip(row.pop("offset_start"), row.pop("offset_end")))
        return row


def prepared_corpus(cfg: DataConfig, whole_word: bool) -> Path:
    """The directory of the prepared corpus this run trains from, built first if it is the cache's and
    missing: by rank 0 alone, the other processes waiting for it at a barrier."""
    files = _checked_files(cfg)
    if cfg.prepared is not None:
        directory = Path(cfg.prepared)
        manifest = _prepared_manifest(cfg, whole_word, files)
    else:
        root = Path(cfg.cache_dir) if cfg.cache_dir else _default_cache()
        directory = prepare.cached(files, cfg.tokenizer, root, block_size=cfg.block_size, whole_word=whole_word,
                                   text_column=cfg.text_column, strict=cfg.strict)
        distributed.start_group()  # the barrier below needs the process group, before the engine makes it
        if distributed.is_main() and shards.read_manifest(directory) is None:
            started = time.perf_counter()
            manifest = prepare.prepare(files, cfg.tokenizer, directory, block_size=cfg.block_size,
                                       whole_word=whole_word, text_column=cfg.text_column, strict=cfg.strict,
                                       num_proc=cfg.num_proc, progress=True)
            print(f"prepared corpus: built {directory} ({manifest['blocks']} blocks; {prepare.skipped_lines(manifest)}) "
                  f"in {time.perf_counter() - started:.1f}s on rank {distributed.rank()}", flush=True)
        distributed.barrier()
        manifest = shards.read_manifest(directory)
        if distributed.world_size() > 1:  # one line per process: which built, which only read, and what
            # the line and its newline in one write: under `python -u` print writes them apart, and another
            # rank's line can land between the two
            print(f"prepared corpus: rank {distributed.rank()} reads {directory}\n", end="", flush=True)
        if manifest is None:
            raise UserError(f"data.cache_dir: rank {distributed.rank()} cannot see the corpus rank 0 prepared in "
                            f"{directory}: put data.cache_dir on a filesystem every node shares, or run "
                            "`alum prepare` there and pass --data-dir")
        shards.check(manifest, directory, tokenizer=cfg.tokenizer, block_size=cfg.block_size, whole_word=whole_word,
                     files=None)
    unknown = prepare.unknown_warning(manifest)
    if unknown:
        say(f"warning: {unknown}")
    return directory


def _checked_files(cfg: DataConfig) -> list[Path]:
    """The corpus files, checked; with a prepared corpus only rank 0 reads them (other nodes may not see the
    text), to compare them with the manifest."""
    return corpus_files(cfg) if cfg.files and (cfg.prepared is None or distributed.is_main()) else []


def _read_prepared(cfg: DataConfig) -> dict:
    manifest = shards.read_manifest(cfg.prepared)
    if manifest is None:
        raise UserError(f"data.prepared: {cfg.prepared} holds no prepared corpus (no {shards.MANIFEST}); "
                        "make one with `alum prepare`")
    return manifest


def _prepared_manifest(cfg: DataConfig, whole_word: bool, files: list[Path]) -> dict:
    """The manifest of the run's prepared corpus, once it is known to match the run."""
    manifest = _read_prepared(cfg)
    shards.check(manifest, cfg.prepared, tokenizer=cfg.tokenizer, block_size=cfg.block_size, whole_word=whole_word,
                 files=files)
    return manifest


def _default_cache() -> Path:
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "alum-prepared"


def _streaming_blocks(cfg: DataConfig, tokenizer, whole_word: bool) -> Blocks:
    import datasets

    files = corpus_files(cfg)
    if isinstance(cfg.validation, float) and cfg.validation > 0:
        raise UserError("data.validation must be a number of blocks (an int) when data.streaming is on")
    held = int(cfg.validation) if isinstance(cfg.validation, int) else 0
    parts = stream.whole_corpus(files)
    fast = backend(tokenizer)
    validation = None
    if held:
        got, index, position = stream.head(parts, Packer(fast, cfg.block_size, whole_word), cfg.text_column,
                                           cfg.strict, held)
        if len(got) < held or index >= len(parts):
            raise UserError(f"the corpus holds fewer than {held} blocks of {cfg.block_size} tokens")
        validation = datasets.Dataset.from_list([rows(b) for b in got])
        parts = stream.after(parts, index, position)
    mine = stream.for_rank(parts, distributed.rank(), distributed.world_size())
    train = stream.BlockStream(mine, fast, cfg.block_size, whole_word, cfg.text_column, cfg.strict,
                               cfg.shuffle_buffer, seed=0)
    return Blocks(train=train, validation=validation, train_size=None)


def batch_order(blocks: Blocks, batch_size: int, seed: int):
    """What the loop draws its batches from, resumable by `state()`/`load()`."""
    if blocks.train_size is not None:
        return EpochBatches(blocks.train_size, batch_size, seed, distributed.rank(), distributed.world_size())
    return StreamBatches(blocks.train, batch_size, seed + 7919 * distributed.rank())


class MaskedBatches:
    """MLM batches: the transformers collator (15%, 80/10/10, optional whole-word), plus the flat indices of
    the masked positions so the LM head runs on those only. The collator draws from its own seeded
    generator, whose state a checkpoint saves."""

    def __init__(self, tokenizer, masking: MaskingConfig, seed: int):
        from transformers import DataCollatorForLanguageModeling

        if tokenizer.mask_token is None:
            raise UserError("the tokenizer has no mask token; masked-LM pretraining needs one")
        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=masking.probability, mask_replace_prob=masking.mask_replace,
            random_replace_prob=masking.random_replace, whole_word_mask=masking.whole_word, seed=seed,
        )
        self.collator.create_rng()  # otherwise made lazily at the first batch; resume needs it now

    @property
    def generator(self) -> torch.Generator:
        return self.collator.generator

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(rows)
        batch.pop("offset_mapping", None)
        batch.setdefault("attention_mask", torch.ones_like(batch["input_ids"]))
        return with_mlm_index(batch)


def with_mlm_index(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    labels = batch["labels"]
    picked = (labels != -100).reshape(-1)
    batch["mlm_index"] = picked.nonzero().squeeze(-1)  # computed on the CPU: no device sync in the forward
    batch["mlm_targets"] = labels.reshape(-1)[picked]
    return batch


class EpochBatches:
    """Indices of map-style batches in a seeded order per epoch, sharded over ranks; resumable by position."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.per_epoch = size // world // batch_size
        if self.per_epoch < 1:
            raise UserError(
                f"the corpus gives {size} training blocks, fewer than one batch of {batch_size} per process "
                f"({world} process(es)): add text, or lower engine.micro_batch_size or data.block_size"
            )
        self.epoch, self.position = 0, 0

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            mine = order[self.rank :: self.world].tolist()
            while self.position < self.per_epoch:
                start = self.position * self.batch_size
                self.position += 1
                yield mine[start : start + self.batch_size]
            self.epoch, self.position = self.epoch + 1, 0


class StreamBatches:
    """Batches of a streaming corpus (pretrain/stream.py), epoch after epoch; its state is the stream's,
    so resume continues at the next block without reading what was consumed."""

    def __init__(self, blocks: stream.BlockStream, batch_size: int, seed: int):
        self.stream, self.batch_size = blocks, batch_size
        self.stream.rng.seed(seed)

    def state(self) -> dict[str, Any]:
        return self.stream.state()

    def load(self, state: dict[str, Any]) -> None:
        if "buffer" not in state:
            raise UserError("this checkpoint's streaming position predates resumable streams: resume with the "
                            "version that wrote it, or start again")
        self.stream.load(state)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            yield [rows(self.stream.next_block()) for _ in range(self.batch_size)]


def fixed_validation_batches(validation, masked: MaskedBatches, batch_size: int, limit: int, seed: int):
    """The held-out blocks, masked once with their own generator, so every evaluation scores the same
    positions and evaluating never moves the training streams."""
    if validation is None or len(validation) == 0:
        return []
    saved = masked.generator.get_state()
    masked.generator.manual_seed(seed + 1_000_003)
    rows = [validation[i] for i in range(min(len(validation), batch_size * limit))]
    batches = [masked(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    masked.generator.set_state(saved)
    return batches
