"""Pretraining data: text -> tokens -> fixed-length blocks (run_mlm's packing), with `datasets` doing the
work and the caching (a second run with the same files and tokenizer does not tokenise again).

Map-style (default): the whole corpus is tokenised once into an Arrow cache; batches are drawn in a seeded
order per epoch, so a position (epoch, batch) is all resume needs. Streaming: texts are read, tokenised and
packed on the fly; resume skips the blocks already consumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from alum.corpus import ensure_nonempty, iter_texts, resolve_files
from alum.errors import UserError
from alum.pretrain.config import DataConfig, MaskingConfig


def _texts(files: list[str], column: str, strict: bool, signature: Any = None) -> Iterator[dict[str, str]]:
    # `signature` (sizes and mtimes) only feeds datasets' cache fingerprint: edited files are read again.
    for text in iter_texts([Path(f) for f in files], text_column=column, strict=strict):
        yield {"text": text}


def _tokenize(batch: dict[str, list], tokenizer, whole_word: bool) -> dict[str, list]:
    return tokenizer(batch["text"], return_special_tokens_mask=True, return_offsets_mapping=whole_word,
                     return_attention_mask=False, return_token_type_ids=False, verbose=False)


def _pack(batch: dict[str, list], block_size: int) -> dict[str, list]:
    """Concatenate the tokenised texts and cut them into blocks; the remainder is dropped."""
    joined = {key: list(chain.from_iterable(values)) for key, values in batch.items()}
    usable = len(joined["input_ids"]) // block_size * block_size
    return {key: [v[i : i + block_size] for i in range(0, usable, block_size)] for key, v in joined.items()}


def corpus_files(cfg: DataConfig) -> list[Path]:
    files = resolve_files(cfg.files)
    ensure_nonempty(files, cfg.text_column)
    return files


def _generator_kwargs(cfg: DataConfig, files: list[Path]) -> dict[str, Any]:
    signature = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return {"files": [str(f) for f in files], "column": cfg.text_column, "strict": cfg.strict, "signature": signature}


@dataclass
class Blocks:
    train: Any  # a datasets.Dataset (map-style) or IterableDataset (streaming)
    validation: Any  # a datasets.Dataset of held-out blocks
    train_size: int | None  # blocks, when known (map-style)


def build_blocks(cfg: DataConfig, tokenizer, whole_word: bool) -> Blocks:
    """Tokenise and pack the corpus; hold out the validation blocks."""
    import datasets

    files = corpus_files(cfg)
    columns = ["input_ids", "special_tokens_mask"] + (["offset_mapping"] if whole_word else [])
    tokenize = dict(function=_tokenize, batched=True, remove_columns=["text"],
                    fn_kwargs={"tokenizer": tokenizer, "whole_word": whole_word})
    pack = dict(function=_pack, batched=True, fn_kwargs={"block_size": cfg.block_size})
    if cfg.streaming:
        stream = datasets.IterableDataset.from_generator(_texts, gen_kwargs=_generator_kwargs(cfg, files))
        stream = stream.map(**tokenize).map(**pack).select_columns(columns)
        held = int(cfg.validation) if isinstance(cfg.validation, int) else 0
        if isinstance(cfg.validation, float) and cfg.validation > 0:
            raise UserError("data.validation must be a number of blocks (an int) when data.streaming is on")
        validation = datasets.Dataset.from_list(list(stream.take(held))) if held else None
        if held and (validation is None or len(validation) < held):
            raise UserError(f"the corpus holds fewer than {held} blocks of {cfg.block_size} tokens")
        return Blocks(train=stream.skip(held), validation=validation, train_size=None)

    texts = datasets.Dataset.from_generator(_texts, gen_kwargs=_generator_kwargs(cfg, files), cache_dir=cfg.cache_dir)
    num_proc = cfg.num_proc if cfg.num_proc > 1 else None
    blocks = texts.map(**tokenize, num_proc=num_proc, desc="tokenising").map(**pack, num_proc=num_proc, desc="packing")
    blocks = blocks.select_columns(columns)
    n = len(blocks)
    held = cfg.validation if isinstance(cfg.validation, int) else int(round(cfg.validation * n))
    held = min(held, n - 1)
    if n - held < 1 or n < 2:
        raise UserError(
            f"the corpus gives {n} block(s) of {cfg.block_size} tokens; it needs at least 2 (one to train, one to "
            "validate): add text or lower data.block_size"
        )
    return Blocks(train=blocks.select(range(n - held)), validation=blocks.select(range(n - held, n)) if held else None,
                  train_size=n - held)


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
    """Batches of a streaming corpus, epoch after epoch, with a seeded shuffle buffer; resumable by counting
    the batches consumed (resume re-reads the stream up to that point)."""

    def __init__(self, stream, batch_size: int, seed: int, buffer: int, rank: int = 0, world: int = 1):
        from datasets.distributed import split_dataset_by_node

        self.stream = split_dataset_by_node(stream, rank=rank, world_size=world) if world > 1 else stream
        self.batch_size, self.seed, self.buffer = batch_size, seed, buffer
        self.epoch, self.position = 0, 0

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            shuffled = self.stream.shuffle(seed=self.seed, buffer_size=self.buffer)
            shuffled.set_epoch(self.epoch)
            rows = iter(shuffled.skip(self.position * self.batch_size))
            produced = False
            while True:
                batch = [row for _, row in zip(range(self.batch_size), rows)]
                if len(batch) < self.batch_size:
                    break
                produced = True
                self.position += 1
                yield batch
            if not produced and self.position == 0:
                raise UserError(f"the corpus gives fewer than {self.batch_size} blocks per process")
            self.epoch, self.position = self.epoch + 1, 0


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
