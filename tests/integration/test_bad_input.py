"""Every command against a table of bad inputs: missing, empty, binary, truncated and malformed files; wrong
columns and labels; bad YAML and JSON; bad overrides; out-of-range numbers; unknown methods and options; an
output path that is a file or cannot be written; a full disk.

Each row must end with exit status 2 and exactly one line on stderr that names the file, line or key, with no
traceback, no work done (nothing new anywhere under the test's directory) and the output directory of a
previous run left byte-for-byte as it was. Most rows run in this process through `alum.cli.main`; a few go
through a real `python -m alum.cli` to show the entry point itself prints one line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from alum.cli import main
from support.data import sst2_subset, write_jsonl, write_tsv
from support.models import build_model_dir
from support.paths import REPO

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.geteuid() == 0
NOT_AS_ROOT = pytest.mark.skipif(ROOT, reason="root writes through chmod 0o500: a read-only directory cannot be "
                                              "made for root without privileges the tests do not take")


# ---------------------------------------------------------------------------------------------------------------
# The workspace of one row: inputs written on the fly, and an output directory holding a previous run.


@dataclass
class W:
    """What a row's arguments may name. `prior` holds a previous run of the row's command."""

    tmp: Path
    tok: Path  # a byte-level BPE tokenizer directory
    model: Path  # a tiny masked-LM BERT with its tokenizer
    ft: Path  # a tiny fine-tuned classifier, as `alum finetune` exports it (alum_task.json)
    corpus: Path
    train: Path
    dev: Path
    prior: Path

    def file(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def folder(self, name: str) -> Path:
        path = self.tmp / "in" / name
        path.mkdir(parents=True)
        return path

    def binary(self, name: str) -> Path:
        """Random bytes: nearly every line is undecodable, some hold NULs."""
        return self.file(name, random.Random(0).randbytes(8000))

    def gz_cut(self, name: str, text: str) -> Path:
        whole = gzip.compress(text.encode("utf-8"))
        return self.file(name, whole[: len(whole) // 2])

    def parquet_cut(self, name: str, column: str = "text") -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.tmp / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({column: self.corpus.read_text().splitlines()}), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    def copy(self, source: Path, name: str) -> Path:
        target = self.tmp / "in" / name
        shutil.copytree(source, target)
        return target

    def lines(self, n: int = 60) -> str:
        return "".join(self.corpus.read_text().splitlines(keepends=True)[:n])


def tok_cut_json(w: W, source: Path, name: str, file: str) -> Path:
    """A copy of a HF directory `source` with `file` cut in half."""
    copy = w.copy(source, name)
    data = (copy / file).read_bytes()
    (copy / file).write_bytes(data[: len(data) // 2])
    return copy


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under `root`: its content hash, or 'dir'. The prepared-corpus cache (`cache/`)
    is the one place a run may write before a check that needs the tokens (a corpus shorter than a block):
    only a complete corpus may appear there, never a half-built one."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.split(os.sep)[0] == "cache":
            assert not path.name.endswith(".partial"), f"a half-built corpus was left: {rel}"
            continue
        if path.is_symlink():
            out[rel] = "link " + os.readlink(path)
        elif path.is_dir():
            out[rel] = f"dir {oct(path.stat().st_mode & 0o777)}"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------------------------------
# The table. A row: its command, its id, its arguments (a function of the workspace: later flags win over the
# base's), and the text its error line must hold (formatted with the workspace as `w`).


@dataclass
class Row:
    command: str
    id: str
    args: Callable[[W], list]
    expect: str
    marks: tuple = ()
    base: bool = True  # the command's good arguments first, then the row's


def tok_train_base(w: W) -> list:
    return ["tokenizer", "train", "--files", w.corpus, "--vocab-size", 300, "--output", w.prior, "--overwrite",
            "--no-progress"]


def tok_stats_base(w: W) -> list:
    return ["tokenizer", "stats", "--tokenizer", w.tok, "--files", w.corpus, "--no-progress"]


def pretrain_base(w: W) -> list:
    return ["pretrain", "--config", "tiny", "--tokenizer", w.tok, "--files", w.corpus, "--output", w.tmp / "pt-out",
            "--max-steps", 2, "data.block_size=16", "data.validation=2", f"data.cache_dir={w.tmp / 'cache'}",
            "model.overrides={hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}",
            "engine.micro_batch_size=2", "eval_every=1", "save_every=1", "log_every=1"]


def finetune_base(w: W) -> list:
    return ["finetune", "--config", "sst2", "--model", w.model, "--train-file", w.train, "--dev-file", w.dev,
            "--output", w.tmp / "ft-out", "--max-steps", 1, "train.eval_every=1"]


def evaluate_base(w: W) -> list:
    return ["evaluate", "--model", w.ft, "--file", w.dev, "--attack-steps", 1]


def prepare_base(w: W) -> list:
    return ["prepare", "--tokenizer", w.tok, "--files", w.corpus, "--output", w.prior, "--overwrite", "--block-size", 16,
            "--num-proc", 1, "--no-progress"]


def quickstart_base(w: W) -> list:
    return ["quickstart", "--output", w.prior, "--pretrain-steps", 2, "--finetune-epochs", 1]


def export_base(w: W) -> list:
    return ["export", fake_checkpoint(w), "--output", w.tmp / "export-out"]


BASES = {"tokenizer train": tok_train_base, "tokenizer stats": tok_stats_base, "pretrain": pretrain_base,
         "prepare": prepare_base, "finetune": finetune_base, "evaluate": evaluate_base, "quickstart": quickstart_base,
         "export": export_base}

def common_config_rows(command: str, key_unknown: str, key_int: str, preset_kind: str) -> list[Row]:
    """The YAML and override rows every command with a --config shares."""
    return [
        Row(command, "config-missing", lambda w: ["--config", w.tmp / "nope.yaml"], "nope.yaml: config file not found"),
        Row(command, "config-unknown-preset", lambda w: ["--config", "nosuch"],
            f"--config nosuch: neither a file nor a {preset_kind} preset"),
        Row(command, "config-is-a-directory", lambda w: ["--config", w.tmp / "data"],
            "data: a directory, not a config file"),
        Row(command, "config-bad-yaml", lambda w: ["--config", w.file("bad.yaml", "a: 1\nb: [unclosed\nc: 3\n")],
            "bad.yaml:3: malformed YAML"),
        Row(command, "config-truncated-yaml",
            lambda w: ["--config", w.file("cut.yaml", "optim: {lr: 0.1, betas: [0.9")],
            "cut.yaml:1: malformed YAML"),
        Row(command, "config-binary", lambda w: ["--config", w.binary("blob.yaml")],
            "blob.yaml: config is not UTF-8 text"),
        Row(command, "config-a-list", lambda w: ["--config", w.file("list.yaml", "- a\n- b\n")],
            "list.yaml: a config must be a mapping"),
        Row(command, "override-unknown-key", lambda w: [f"{key_unknown}=3"], f"unknown key '{key_unknown}'"),
        Row(command, "override-wrong-type", lambda w: [f"{key_int}=many"],
            f"key '{key_int}' expects int, got str 'many'"),
        Row(command, "override-bad-syntax", lambda w: ["a..b=1"], "override 'a..b=1': expected key.sub=value"),
        Row(command, "override-a-mapping-for-a-number", lambda w: [f"{key_int}={{x: 1}}"],
            f"key '{key_int}' expects int, got dict"),
    ]


ROWS: list[Row] = [
    # ---- tokenizer train: the output holds an earlier tokenizer and --overwrite is given --------------------
    Row("tokenizer train", "corpus-missing", lambda w: ["--files", w.tmp / "nope.txt"],
        "corpus path '{w.tmp}/nope.txt' not found"),
    Row("tokenizer train", "corpus-empty", lambda w: ["--files", w.file("empty.txt", "")],
        "corpus is empty (no non-blank text in {w.tmp}/in/empty.txt)"),
    Row("tokenizer train", "corpus-blank-lines", lambda w: ["--files", w.file("blank.txt", "\n  \n\t\n")],
        "corpus is empty"),
    Row("tokenizer train", "corpus-binary", lambda w: ["--files", w.binary("blob.txt")], "blob.txt:1"),
    Row("tokenizer train", "limit-alphabet-with-byte-level", lambda w: ["bpe.limit_alphabet=5"],
        "bpe.limit_alphabet applies to classic BPE only"),
    Row("tokenizer train", "unknown-normalisation", lambda w: ["normalize.unicode=nfx"],
        "key 'normalize.unicode' must be one of none, nfc"),
    Row("tokenizer train", "corpus-binary-strict", lambda w: ["--files", w.binary("blob.txt"), "--strict"],
        "blob.txt:1"),
    Row("tokenizer train", "corpus-truncated-gz", lambda w: ["--files", w.gz_cut("cut.txt.gz", w.lines(200))],
        "cut.txt.gz: cannot read"),
    Row("tokenizer train", "corpus-gz-not-gzip", lambda w: ["--files", w.file("fake.txt.gz", "plain text\n")],
        "fake.txt.gz: cannot read"),
    Row("tokenizer train", "corpus-truncated-parquet", lambda w: ["--files", w.parquet_cut("cut.parquet")],
        "cut.parquet: not a readable parquet file"),
    Row("tokenizer train", "corpus-malformed-jsonl",
        lambda w: ["--files", w.file("bad.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": \n')],
        "bad.jsonl:3: not valid JSON"),
    Row("tokenizer train", "corpus-jsonl-wrong-field", lambda w: ["--files", w.file("other.jsonl", '{"body": "a"}\n')],
        "other.jsonl:1: no 'text' field"),
    Row("tokenizer train", "corpus-csv-wrong-column", lambda w: ["--files", w.file("other.csv", "body\nhello\n")],
        "other.csv: no 'text' column"),
    Row("tokenizer train", "corpus-dir-without-files",
        lambda w: ["--files", w.folder("void")],
        "corpus directory '{w.tmp}/in/void' has no files"),
    Row("tokenizer train", "corpus-glob-matches-nothing", lambda w: ["--files", w.tmp / "*.nothing"],
        "corpus pattern '{w.tmp}/*.nothing' matches no file"),
    Row("tokenizer train", "vocab-negative", lambda w: ["--vocab-size", -5], "vocab_size must be positive"),
    Row("tokenizer train", "vocab-zero", lambda w: ["--vocab-size", 0], "vocab_size must be positive"),
    Row("tokenizer train", "vocab-below-alphabet", lambda w: ["--vocab-size", 100],
        "bpe.vocab_size 100 is smaller than the byte-level alphabet"),
    Row("tokenizer train", "vocab-not-a-number", lambda w: ["--vocab-size", "lots"],
        "argument --vocab-size: invalid int value: 'lots'"),
    Row("tokenizer train", "sample-2", lambda w: ["corpus.sample=2"], "corpus.sample must be in (0, 1], got 2.0"),
    Row("tokenizer train", "sample-0", lambda w: ["corpus.sample=0"], "corpus.sample must be in (0, 1]"),
    Row("tokenizer train", "min-frequency-negative", lambda w: ["bpe.min_frequency=-1"],
        "bpe.min_frequency must be 0 or more"),
    Row("tokenizer train", "max-length-0", lambda w: ["model_max_length=0"], "model_max_length must be positive"),
    Row("tokenizer train", "unknown-algorithm", lambda w: ["bpe.algorithm=wordpiece"],
        "key 'bpe.algorithm' must be one of byte-level, classic"),
    Row("tokenizer train", "unknown-special-style", lambda w: ["special_tokens=gpt"],
        "key 'special_tokens' must be one of roberta, bert"),
    Row("tokenizer train", "unknown-flag", lambda w: ["--vocab-sizes", 300], "unrecognized arguments: --vocab-sizes"),
    Row("tokenizer train", "override-not-key-value", lambda w: ["garbage"],
        "override 'garbage': expected key.sub=value"),
    Row("tokenizer train", "output-is-a-file", lambda w: ["--output", w.file("taken", "mine")],
        "output '{w.tmp}/in/taken' exists and is not a directory"),
    Row("tokenizer train", "output-under-a-file", lambda w: ["--output", w.file("taken", "mine") / "tok"],
        "'{w.tmp}/in/taken' is not a writable directory"),
    Row("tokenizer train", "output-read-only", lambda w: ["--output", read_only(w) / "tok"],
        "is not a writable directory", (NOT_AS_ROOT,)),
    Row("tokenizer train", "output-holds-a-run-without-overwrite",
        lambda w: ["tokenizer", "train", "--files", w.corpus, "--output", w.prior, "--no-progress"],
        "output directory '{w.prior}' exists and is not empty", base=False),
    *common_config_rows("tokenizer train", "bpe.vocab_sise", "bpe.min_frequency", "tokenizer"),

    # ---- tokenizer stats: writes nothing; the tokenizer and corpus are the inputs ---------------------------
    Row("tokenizer stats", "tokenizer-missing", lambda w: ["--tokenizer", w.tmp / "none"],
        "tokenizer '{w.tmp}/none' not found (--tokenizer)"),
    Row("tokenizer stats", "tokenizer-empty-dir",
        lambda w: ["--tokenizer", w.folder("e")],
        "'{w.tmp}/in/e' is not a tokenizer directory transformers can load (--tokenizer)"),
    Row("tokenizer stats", "tokenizer-json-truncated",
        lambda w: ["--tokenizer", tok_cut_json(w, w.tok, "t", "tokenizer.json")],
        "{w.tmp}/in/t"),
    Row("tokenizer stats", "tokenizer-json-binary", lambda w: ["--tokenizer", w.binary("tokenizer.json")],
        "tokenizer.json"),
    Row("tokenizer stats", "tokenizer-config-truncated",
        lambda w: ["--tokenizer", tok_cut_json(w, w.tok, "t", "tokenizer_config.json")],
        "tokenizer_config.json"),
    Row("tokenizer stats", "corpus-missing", lambda w: ["--files", w.tmp / "nope.txt"],
        "corpus path '{w.tmp}/nope.txt' not found"),
    Row("tokenizer stats", "corpus-empty", lambda w: ["--files", w.file("empty.txt", "")], "corpus is empty"),
    Row("tokenizer stats", "corpus-binary", lambda w: ["--files", w.binary("blob.txt")], "blob.txt"),
    Row("tokenizer stats", "corpus-truncated-gz", lambda w: ["--files", w.gz_cut("cut.txt.gz", w.lines(200))],
        "cut.txt.gz: cannot read"),
    Row("tokenizer stats", "corpus-truncated-parquet", lambda w: ["--files", w.parquet_cut("cut.parquet")],
        "cut.parquet: not a readable parquet file"),
    Row("tokenizer stats", "corpus-malformed-jsonl",
        lambda w: ["--files", w.file("bad.jsonl", '{"text": "a"}\n{"text": \n')],
        "bad.jsonl:2: not valid JSON"),
    Row("tokenizer stats", "text-column-missing",
        lambda w: ["--files", w.file("a.jsonl", '{"text": "a"}\n'), "--text-column", "body"],
        "a.jsonl:1: no 'body' field"),
    Row("tokenizer stats", "sample-2", lambda w: ["--sample", 2], "--sample must be in (0, 1], got 2.0"),
    Row("tokenizer stats", "sample-not-a-number", lambda w: ["--sample", "half"],
        "argument --sample: invalid float value: 'half'"),

    # ---- pretrain: the output holds an earlier run and --overwrite is given -------------------------------
    Row("pretrain", "corpus-missing", lambda w: ["--files", w.tmp / "nope.txt"],
        "corpus path '{w.tmp}/nope.txt' not found"),
    Row("pretrain", "corpus-empty", lambda w: ["--files", w.file("empty.txt", "")], "corpus is empty"),
    Row("pretrain", "corpus-binary", lambda w: ["--files", w.binary("blob.txt")], "blob.txt"),
    Row("pretrain", "corpus-truncated-gz", lambda w: ["--files", w.gz_cut("cut.txt.gz", w.lines(200))],
        "cut.txt.gz: cannot read"),
    Row("pretrain", "corpus-truncated-parquet", lambda w: ["--files", w.parquet_cut("cut.parquet")],
        "cut.parquet: not a readable parquet file"),
    Row("pretrain", "corpus-malformed-jsonl",
        lambda w: ["--files", w.file("bad.jsonl", '{"text": "a b c"}\n{"text": \n')],
        "bad.jsonl:2: not valid JSON"),
    Row("pretrain", "corpus-jsonl-wrong-field", lambda w: ["--files", w.file("other.jsonl", '{"body": "a"}\n')],
        "other.jsonl:1: no 'text' field"),
    Row("pretrain", "tokenizer-missing", lambda w: ["--tokenizer", w.tmp / "none"],
        "tokenizer '{w.tmp}/none' not found (data.tokenizer)"),
    Row("pretrain", "tokenizer-a-model-without-tokenizer-files", lambda w: ["--tokenizer", without_tokenizer(w, w.model)],
        "'{w.tmp}/in/no-tok' holds no tokenizer files (tokenizer.json, vocab.txt"),
    Row("pretrain", "data-dir-holds-no-prepared-corpus", lambda w: ["--data-dir", w.folder("nothing")],
        "data.prepared: {w.tmp}/in/nothing holds no prepared corpus (no manifest.json); make one with `alum prepare`"),
    Row("pretrain", "corpus-saved-dataset-without-the-text-column",
        lambda w: ["--files", saved_dataset(w), "--text-column", "body"], "data-00000-of-00001.arrow: no 'body' column"),
    Row("pretrain", "tokenizer-json-truncated",
        lambda w: ["--tokenizer", tok_cut_json(w, w.tok, "t", "tokenizer.json")],
        "{w.tmp}/in/t"),
    Row("pretrain", "lr-negative", lambda w: ["optim.lr=-1e-3"], "optim.lr must be positive"),
    Row("pretrain", "block-size-0", lambda w: ["data.block_size=0"], ": data.block_size must be at least 8"),
    Row("pretrain", "masking-probability-2", lambda w: ["masking.probability=2"],
        ": masking.probability must be in (0, 1)"),
    Row("pretrain", "max-steps-0", lambda w: ["--max-steps", 0], "max_steps must be at least 1"),
    Row("pretrain", "max-steps-not-a-number", lambda w: ["--max-steps", "abc"],
        "argument --max-steps: invalid int value: 'abc'"),
    Row("pretrain", "seed-negative", lambda w: ["seed=-1"], "seed"),
    Row("pretrain", "validation-negative", lambda w: ["data.validation=-1"], "data.validation"),
    Row("pretrain", "warmup-negative", lambda w: ["optim.warmup=-5"], "optim.warmup"),
    Row("pretrain", "keep-checkpoints-0", lambda w: ["keep_checkpoints=0"], "keep_checkpoints"),
    Row("pretrain", "unknown-precision", lambda w: ["engine.precision=fp8"],
        "key 'engine.precision' must be one of fp32, bf16, fp16"),
    Row("pretrain", "micro-batch-0", lambda w: ["engine.micro_batch_size=0"],
        "micro_batch_size and grad_accum must be at least 1"),
    Row("pretrain", "switch-beyond-max-steps", lambda w: ["adversarial.start_step=50"],
        "adversarial.start_step=50 puts the switch at step 50, beyond max_steps=2"),
    Row("pretrain", "switch-by-the-retired-key", lambda w: ["adversarial.start=1"],
        "key 'adversarial.start' is retired: set adversarial.start_step (a number of masked-LM steps) or "
        "adversarial.start_fraction (a share of max_steps) instead"),
    Row("pretrain", "switch-by-the-retired-key-in-a-config",
        lambda w: ["--config", w.file("old.yaml", "adversarial:\n  start: 1.0\n")],
        "old.yaml (with command-line overrides): key 'adversarial.start' is retired"),
    Row("pretrain", "switch-by-step-and-fraction", lambda w: ["adversarial.start_step=1", "adversarial.start_fraction=0.5"],
        "adversarial.start_step (1) and adversarial.start_fraction (0.5) are both set: set one"),
    Row("pretrain", "switch-by-step-and-fraction-in-a-config",
        lambda w: ["--config", w.file("both.yaml", "adversarial: {start_step: 1, start_fraction: 0.5}\n")],
        "both.yaml (with command-line overrides): adversarial.start_step (1) and adversarial.start_fraction (0.5) are both set"),
    Row("pretrain", "switch-fraction-above-1", lambda w: ["adversarial.start_fraction=1.5"],
        "adversarial.start_fraction must be in [0, 1] (a share of max_steps), got 1.5"),
    Row("pretrain", "switch-step-a-fraction", lambda w: ["adversarial.start_step=0.5"],
        "key 'adversarial.start_step' expects int, got float 0.5"),
    Row("pretrain", "unknown-method", lambda w: ["--method", "almu"], "unknown method 'almu'"),
    Row("pretrain", "unknown-method-option", lambda w: ["adversarial.options.alum.alpah=3"],
        "unknown key 'adversarial.options.alum.alpah'"),
    Row("pretrain", "method-option-wrong-type", lambda w: ["adversarial.options.alum.alpha=big"],
        "adversarial.options.alum.alpha"),
    Row("pretrain", "unknown-family", lambda w: ["model.family=gpt"],
        "key 'model.family' expects one of bert, roberta"),
    Row("pretrain", "deepspeed-missing", lambda w: ["--deepspeed", w.tmp / "nope.json"], "nope.json"),
    Row("pretrain", "deepspeed-unknown-name", lambda w: ["--deepspeed", "zero9"],
        "engine.deepspeed zero9: neither a file nor a deepspeed preset"),
    Row("pretrain", "deepspeed-truncated-json",
        lambda w: ["--deepspeed", w.file("cut.json", '{"zero_optimization": {"stage": ')],
        "cut.json:1: malformed JSON"),
    Row("pretrain", "deepspeed-binary", lambda w: ["--deepspeed", w.binary("blob.json")], "blob.json"),
    Row("pretrain", "deepspeed-a-list", lambda w: ["--deepspeed", w.file("list.json", "[1, 2]")], "list.json"),
    Row("pretrain", "deepspeed-bad-stage",
        lambda w: ["--deepspeed", w.file("stage.json", '{"zero_optimization": {"stage": "two"}}')],
        "stage.json"),
    Row("pretrain", "output-is-a-file", lambda w: ["--output", w.file("taken", "mine")], "{w.tmp}/in/taken"),
    Row("pretrain", "output-read-only", lambda w: ["--output", read_only(w) / "run"], "{w.tmp}/in/ro", (NOT_AS_ROOT,)),
    Row("pretrain", "output-holds-a-run", lambda w: ["--output", w.prior],
        "{w.prior} already holds a run: pass --resume"),
    Row("pretrain", "overwrite-with-a-missing-corpus",
        lambda w: ["--output", w.prior, "--overwrite", "--files", w.tmp / "nope.txt"],
        "corpus path '{w.tmp}/nope.txt' not found"),
    Row("pretrain", "overwrite-with-a-missing-tokenizer",
        lambda w: ["--output", w.prior, "--overwrite", "--tokenizer", w.tmp / "none"],
        "tokenizer '{w.tmp}/none' not found"),
    Row("pretrain", "overwrite-with-an-unknown-method",
        lambda w: ["--output", w.prior, "--overwrite", "--method", "almu"],
        "unknown method 'almu'"),
    Row("pretrain", "overwrite-with-block-size-past-the-corpus",
        lambda w: ["--output", w.prior, "--overwrite", "data.block_size=100000"],
        "block"),
    *common_config_rows("pretrain", "optim.lrr", "log_every", "pretrain"),

    # ---- prepare: the output holds an earlier prepared corpus and --overwrite is given ---------------------
    Row("prepare", "corpus-missing", lambda w: ["--files", w.tmp / "nope.txt"], "corpus path '{w.tmp}/nope.txt' not found"),
    Row("prepare", "corpus-empty", lambda w: ["--files", w.file("empty.txt", "")], "corpus is empty"),
    Row("prepare", "corpus-binary", lambda w: ["--files", w.binary("blob.txt")], "blob.txt"),
    Row("prepare", "corpus-an-arrow-file-without-the-text-column",
        lambda w: ["--files", arrow_file(w), "--text-column", "body"], "cache-5f2d.arrow: no 'body' column"),
    Row("prepare", "corpus-saved-dataset-unknown-split", lambda w: ["--files", saved_dict(w)],
        "{w.tmp}/in/saved-dict: no split 'train' (the split); the dataset holds validation"),
    Row("prepare", "corpus-a-file-of-a-saved-dataset", lambda w: ["--files", saved_dataset(w) / "state.json"],
        "'{w.tmp}/in/saved' is a `datasets` dataset saved with save_to_disk: name the folder itself"),
    Row("prepare", "corpus-shorter-than-a-block", lambda w: ["--files", w.file("short.txt", "a few words\n")],
        "the corpus gives 0 blocks of 16 tokens: 1 text(s) of "),
    Row("prepare", "tokenizer-missing", lambda w: ["--tokenizer", w.tmp / "none"], "tokenizer '{w.tmp}/none' not found"),
    Row("prepare", "tokenizer-a-model-without-tokenizer-files", lambda w: ["--tokenizer", without_tokenizer(w, w.model)],
        "'{w.tmp}/in/no-tok' holds no tokenizer files (tokenizer.json, vocab.txt"),
    Row("prepare", "tokenizer-of-special-tokens-only", lambda w: ["--tokenizer", specials_only(w)],
        "'{w.tmp}/in/specials' holds no vocabulary (--tokenizer): the tokenizer made from it has its 5 special tokens"),
    Row("prepare", "block-size-4", lambda w: ["--block-size", 4], "--block-size must be at least 8"),
    Row("prepare", "output-holds-a-corpus", lambda w: ["prepare", "--tokenizer", w.tok, "--files", w.corpus, "--output",
                                                      w.prior, "--no-progress"],
        "--output {w.prior} is not empty: pass --overwrite", base=False),

    # ---- finetune: a fresh output directory (the one holding a run is its own row) ------------------------
    Row("finetune", "train-missing", lambda w: ["--train-file", w.tmp / "nope.tsv"],
        "train file '{w.tmp}/nope.tsv' not found"),
    Row("finetune", "train-empty", lambda w: ["--train-file", w.file("empty.tsv", "")],
        "empty.tsv: the train file is empty"),
    Row("finetune", "train-header-only", lambda w: ["--train-file", w.file("head.tsv", "sentence\tlabel\n")],
        "head.tsv: the train split has no examples"),
    Row("finetune", "train-binary", lambda w: ["--train-file", w.binary("blob.tsv")],
        "blob.tsv: cannot read as tsv: line 1 is not UTF-8 text"),
    Row("finetune", "train-truncated-jsonl",
        lambda w: ["--train-file", w.file("cut.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "ba'),
                   "task.format=jsonl"],
        "cut.jsonl: cannot read as jsonl: line 2 is not valid JSON"),
    Row("finetune", "train-unknown-suffix", lambda w: ["--train-file", w.file("train.txt", "sentence\tlabel\na\t1\n")],
        "train.txt: cannot tell the format from the suffix '.txt'"),
    Row("finetune", "train-wrong-columns",
        lambda w: ["--train-file", write_tsv(w.tmp / "renamed.tsv", ["text", "label"], [["good", 1]])],
        "renamed.tsv: no column 'sentence' (task.text_columns)"),
    Row("finetune", "dev-label-outside-the-set",
        lambda w: ["--dev-file", write_tsv(w.tmp / "dev3.tsv", ["sentence", "label"], [["good", 1], ["so so", 3]])],
        "dev3.tsv:3: label '3' in column 'label' is not one of the task's labels"),
    Row("finetune", "dev-label-column-missing",
        lambda w: ["--dev-file", write_tsv(w.tmp / "nolabel.tsv", ["sentence"], [["good"]])],
        "nolabel.tsv: no column 'label' (task.label_column)"),
    Row("finetune", "dev-jsonl-wrong-field",
        lambda w: ["--dev-file", write_jsonl(w.tmp / "dev.jsonl", [{"text": "a", "label": 1}])],
        "dev.jsonl: no column 'sentence'"),
    Row("finetune", "regression-label-not-a-number",
        lambda w: ["--config", "stsb", "--train-file", reg_file(w), "--dev-file", reg_file(w), "data.max_seq_len=64"],
        "reg.tsv:3: label 'high' in column 'score' is not a number"),
    # token classification (CoNLL files, the WNUT-17 preset's labels)
    Row("finetune", "conll-line-with-other-columns",
        lambda w: ["--config", "wnut17", "--train-file", w.file("bad.conll", "Paris B-location\nis O\nnice\n"),
                   "--dev-file", w.file("dev.conll", "Paris B-location\n"), "data.max_seq_len=32"],
        "bad.conll:3: 1 columns, but line 1 has 2"),
    Row("finetune", "conll-dev-tag-outside-the-labels",
        lambda w: ["--config", "wnut17", "--train-file", w.file("train.conll", "Paris B-location\n"),
                   "--dev-file", w.file("dev.conll", "Paris B-location\n\nRio B-EVENT\n"), "data.max_seq_len=32"],
        "dev.conll:3: tag 'B-EVENT' is not one of the task's labels"),
    Row("finetune", "conll-tag-that-does-not-chunk",
        lambda w: ["--config", "wnut17", "task.labels=null", "--train-file", w.file("t.conll", "Paris LOC\n"),
                   "--dev-file", w.file("d.conll", "Paris O\n"), "data.max_seq_len=32"],
        "t.conll:1: tag 'LOC' is neither O nor <B|I|E|S>-<type>"),
    Row("finetune", "jsonl-tag-ids-without-labels",
        lambda w: ["--config", "wnut17", "task.labels=null",
                   "--train-file", write_jsonl(w.tmp / "ids.jsonl", [{"tokens": ["EU"], "ner_tags": [3]}]),
                   "--dev-file", write_jsonl(w.tmp / "d.jsonl", [{"tokens": ["EU"], "ner_tags": [3]}]),
                   "data.max_seq_len=32"],
        "ids.jsonl:1: tag 3 is an id; integer tags need task.labels"),
    Row("finetune", "token-labels-not-tags", lambda w: ["--config", "wnut17", "task.labels=[O, PER]"],
        "task.labels: tag 'PER' is neither O nor"),
    Row("finetune", "token-dataset-without-the-tokens-column",
        lambda w: ["finetune", "--config", "wnut17", "--model", w.model, "--output", w.tmp / "ft-out",
                   "data.train_file=''", "data.dev_file=''", "data.max_seq_len=32", "--dataset", saved_task_dict(w)],
        "{w.tmp}/in/task-dict[train]: no column 'tokens' (task.text_columns); the dataset has: sentence, label",
        base=False),
    Row("finetune", "token-parquet-row-with-fewer-tags",
        lambda w: ["--config", "wnut17", "--train-file", tagged_parquet(w, [["Paris", "is"]], [["B-location"]]),
                   "--dev-file", w.file("dev.conll", "Paris B-location\n"), "data.max_seq_len=32"],
        "tags.parquet row 0: 2 words in 'tokens' but 1 tags in 'ner_tags'"),
    Row("finetune", "files-and-a-dataset", lambda w: ["--dataset", saved_dict(w)],
        "data.dataset and data.train_file: give the task's files or a dataset, not both"),
    Row("finetune", "dataset-unknown-split",
        lambda w: [*finetune_dataset_base(w), saved_task_dict(w), "data.dev_split=test"],
        "{w.tmp}/in/task-dict: no split 'test' (data.dev_split); the folder holds train, validation", base=False),
    Row("finetune", "dataset-missing-column",
        lambda w: [*finetune_dataset_base(w), saved_task_dict(w, column="text")],
        "{w.tmp}/in/task-dict[train]: no column 'sentence' (task.text_columns); the dataset has: text, label", base=False),
    Row("finetune", "dataset-folder-not-a-dataset",
        lambda w: [*finetune_dataset_base(w), w.file("notes/readme.md", "# notes\n").parent],
        "data.dataset {w.tmp}/in/notes: cannot load (a local folder that holds no dataset)", base=False),
    Row("finetune", "dataset-hub-name-offline", lambda w: [*finetune_dataset_base(w), "glue", "--dataset-config", "sst2"],
        "data.dataset glue: cannot load (not a local folder; from the Hub): Couldn't reach 'glue' on the Hub",
        base=False),
    Row("finetune", "train-file-a-folder-not-a-saved-dataset", lambda w: ["--train-file", w.folder("plain")],
        "{w.tmp}/in/plain: a directory, not a train file nor a folder written by save_to_disk"),
    Row("finetune", "dataset-class-label-in-another-order",
        lambda w: [*finetune_dataset_base(w), saved_task_dict(w, names=["positive", "negative"])],
        "column 'label' is a ClassLabel with names [positive, negative], not the task's labels [0, 1]", base=False),
    # question answering (SQuAD files, the squad_v2 preset)
    Row("finetune", "squad-paragraph-without-context",
        lambda w: squad_args(w, squad_file(w, "bad.json", [{"qas": []}])),
        "bad.json: data[0].paragraphs[0]: missing 'context'"),
    Row("finetune", "squad-jsonl-line-without-answers",
        lambda w: squad_args(w, w.file("bad.jsonl", '{"id": "1", "question": "q", "context": "c"}\n')),
        "bad.jsonl: line 1: missing 'answers'"),
    Row("finetune", "squad-v1-task-on-a-v2-file",
        lambda w: [*squad_args(w, squad_file(w, "v2.json", SQUAD_QAS)), "task.version=v1.1"],
        "v2.json: question 'q2' is unanswerable (SQuAD v2.0) but task.version is v1.1"),
    Row("finetune", "squad-task-with-labels", lambda w: [*squad_args(w), "task.labels=[a, b]"],
        "task.labels: a question-answering task reads SQuAD files"),
    Row("finetune", "squad-dataset-rows-without-answers",
        lambda w: ["finetune", "--config", "squad_v2", "--model", w.model, "--output", w.tmp / "ft-out",
                   "data.train_file=''", "data.dev_file=''", "data.max_seq_len=32", "--dataset", saved_task_dict(w)],
        "{w.tmp}/in/task-dict[train]: row 0: missing 'answers'", base=False),
    Row("finetune", "squad-parquet-answers-of-two-lengths",
        lambda w: squad_args(w, squad_parquet(w, {"text": ["Paris", "Rome"], "answer_start": [0]})),
        "squad.parquet row 0: answers.text has 2 entries, answers.answer_start 1"),
    Row("finetune", "squad-extra-dev-set",
        lambda w: [*squad_args(w), f"data.extra_dev_files.other={squad_file(w, 'other.json')}"],
        "data.extra_dev_files: question answering evaluates one dev set"),
    Row("finetune", "squad-window-without-room",
        lambda w: [*squad_args(w), "data.max_seq_len=16", "task.max_query_length=8", "task.stride=8"],
        "train.json: max_length 16 leaves 5 context tokens"),
    Row("finetune", "model-missing", lambda w: ["--model", w.tmp / "nomodel"],
        "model directory '{w.tmp}/nomodel' not found (model)"),
    Row("finetune", "model-without-weights", lambda w: ["--model", bare_model(w)],
        "no weights (model.safetensors or pytorch_model.bin)"),
    Row("finetune", "model-without-tokenizer-files", lambda w: ["--model", without_tokenizer(w, w.model)],
        "'{w.tmp}/in/no-tok' holds no tokenizer files (tokenizer.json, vocab.txt"),
    Row("finetune", "model-config-truncated", lambda w: ["--model", tok_cut_json(w, w.model, "m", "config.json")],
        "{w.tmp}/in/m/config.json: cannot be read as a model config"),
    Row("finetune", "model-weights-truncated", lambda w: ["--model", cut_weights(w)], "model.safetensors"),
    Row("finetune", "tokenizer-missing", lambda w: ["--tokenizer", w.tmp / "none"],
        "tokenizer '{w.tmp}/none' not found (tokenizer)"),
    Row("finetune", "tokenizer-json-truncated",
        lambda w: [f"tokenizer={tok_cut_json(w, w.model, 't', 'tokenizer.json')}"],
        "{w.tmp}/in/t"),
    Row("finetune", "three-text-columns", lambda w: ["task.text_columns=[a, b, c]"],
        "task.text_columns: at most two (a sentence pair), got 3"),
    Row("finetune", "train-subset-negative", lambda w: ["data.train_subset=-1"],
        "data.train_subset must be 0 (all) or a number of examples, got -1"),
    Row("finetune", "lr-negative", lambda w: ["optim.lr=-1e-3"], "optim.lr must be positive"),
    Row("finetune", "seeds-0", lambda w: ["--seeds", 0], "train.seeds must be at least 1, got 0"),
    Row("finetune", "seeds-not-a-number", lambda w: ["--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
    Row("finetune", "max-seq-len-0", lambda w: ["data.max_seq_len=0"], "data.max_seq_len must be at least 8"),
    Row("finetune", "max-seq-len-past-positions", lambda w: ["data.max_seq_len=100"],
        "data.max_seq_len is 100 but the model in"),
    Row("finetune", "attack-eps-negative", lambda w: ["--attack-eps", -1], "attack.eps must be at least 0, got -1.0"),
    Row("finetune", "warmup-negative", lambda w: ["optim.warmup=-0.5"], "optim.warmup"),
    Row("finetune", "patience-negative", lambda w: ["train.patience=-1"], "train.patience must be at least 0, got -1"),
    Row("finetune", "min-delta-negative", lambda w: ["train.min_delta=-0.01"],
        "train.min_delta must be at least 0, got -0.01"),
    Row("finetune", "gradient-checkpointing-unsupported",
        lambda w: ["--gradient-checkpointing", "--model", no_checkpointing(w)],
        "{w.tmp}/in/no-gc: AlbertForSequenceClassification does not support gradient checkpointing "
        "(supports_gradient_checkpointing is False); set train.gradient_checkpointing=false"),
    Row("finetune", "unknown-method", lambda w: ["--method", "none,fgmm"], "adversarial.method: unknown method 'fgmm'"),
    Row("finetune", "unknown-method-option", lambda w: ["adversarial.options.smart.alpah=2"],
        "unknown key 'adversarial.options.smart.alpah' (did you mean 'alpha'?)"),
    Row("finetune", "method-option-out-of-range", lambda w: ["adversarial.options.smart.alpha=-1"],
        "adversarial.options.smart.alpha"),
    Row("finetune", "unknown-metric", lambda w: ["task.metric=bleu"], "key 'task.metric' expects one of accuracy, f1"),
    Row("finetune", "deepspeed-truncated-json", lambda w: ["--deepspeed", w.file("cut.json", '{"zero_optimization": ')],
        "cut.json:1: malformed JSON"),
    Row("finetune", "deepspeed-binary", lambda w: ["--deepspeed", w.binary("blob.json")], "blob.json"),
    Row("finetune", "deepspeed-optimizer-section",
        lambda w: ["--deepspeed", w.file("opt.json", '{"optimizer": {"type": "Adam"}}')],
        "opt.json: remove 'optimizer'"),
    Row("finetune", "output-is-a-file", lambda w: ["--output", w.file("taken", "mine")], "{w.tmp}/in/taken"),
    Row("finetune", "output-read-only", lambda w: ["--output", read_only(w) / "ft"], "{w.tmp}/in/ro", (NOT_AS_ROOT,)),
    Row("finetune", "output-holds-a-run", lambda w: ["--output", w.prior],
        "{w.prior} already holds a run: pass --resume"),
    Row("finetune", "overwrite-with-a-bad-label",
        lambda w: ["--output", w.prior, "--overwrite", "--dev-file",
                   write_tsv(w.tmp / "dev3.tsv", ["sentence", "label"], [["good", 1], ["so so", 3]])],
        "dev3.tsv:3: label '3'"),
    Row("finetune", "overwrite-with-a-missing-model",
        lambda w: ["--output", w.prior, "--overwrite", "--model", w.tmp / "nomodel"],
        "model directory '{w.tmp}/nomodel' not found"),
    Row("finetune", "resume-and-overwrite", lambda w: ["--output", w.prior, "--overwrite", "--resume"],
        "pass --resume or --overwrite, not both"),
    *common_config_rows("finetune", "optim.lrr", "train.seeds", "finetune"),

    # ---- evaluate: writes nothing; the model, its task and the file are the inputs ------------------------
    Row("evaluate", "file-missing", lambda w: ["--file", w.tmp / "nope.tsv"],
        "evaluation file '{w.tmp}/nope.tsv' not found"),
    Row("evaluate", "file-empty", lambda w: ["--file", w.file("empty.tsv", "")],
        "empty.tsv: the evaluation file is empty"),
    Row("evaluate", "file-binary", lambda w: ["--file", w.binary("blob.tsv")],
        "blob.tsv: cannot read as tsv: line 1 is not UTF-8 text"),
    Row("evaluate", "file-truncated-jsonl",
        lambda w: ["--file", w.file("cut.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "ba')],
        "cut.jsonl: cannot read as jsonl: line 2 is not valid JSON"),
    Row("evaluate", "file-wrong-columns",
        lambda w: ["--file", write_tsv(w.tmp / "renamed.tsv", ["text", "label"], [["good", 1]])],
        "renamed.tsv: no column 'sentence' (task.text_columns)"),
    Row("evaluate", "file-label-outside-the-set",
        lambda w: ["--file", write_tsv(w.tmp / "dev3.tsv", ["sentence", "label"], [["good", 1], ["meh", 7]])],
        "dev3.tsv:3: label '7' in column 'label'"),
    Row("evaluate", "file-header-only", lambda w: ["--file", w.file("head.tsv", "sentence\tlabel\n")],
        "head.tsv: the evaluation split has no examples"),
    Row("evaluate", "task-yaml-unknown-key",
        lambda w: ["--task", w.file("task.yaml", "task: {name: sst2, colour: red}\n")],
        "task.yaml: unknown key 'task.colour'"),
    Row("evaluate", "model-missing", lambda w: ["--model", w.tmp / "nomodel"],
        "model directory '{w.tmp}/nomodel' not found"),
    Row("evaluate", "model-without-weights", lambda w: ["--model", bare_model(w)], "no weights"),
    Row("evaluate", "model-without-tokenizer-files", lambda w: ["--model", without_tokenizer(w, w.ft)],
        "'{w.tmp}/in/no-tok' holds no tokenizer files"),
    Row("evaluate", "model-without-task-file", lambda w: ["--model", w.model], "no alum_task.json"),
    Row("evaluate", "task-file-truncated", lambda w: ["--model", tok_cut_json(w, w.ft, "f", "alum_task.json")],
        "{w.tmp}/in/f/alum_task.json"),
    Row("evaluate", "task-file-unknown-key", lambda w: ["--model", task_file(w, {"name": "sst2", "colour": "red"})],
        "{w.tmp}/in/f/alum_task.json: unknown key 'task.colour'"),
    Row("evaluate", "task-yaml-malformed", lambda w: ["--task", w.file("task.yaml", "task: {name: sst2\n")],
        "task.yaml"),
    Row("evaluate", "task-unknown-name", lambda w: ["--task", "sst3"],
        "--task: task.text_columns: a generic task needs"),
    Row("evaluate", "model-not-fine-tuned",
        lambda w: ["--model", w.ft, w.model, "--task", "sst2", "--tokenizer", w.model],
        "no trained classification head"),
    Row("evaluate", "squad-task-on-a-classifier", lambda w: ["--task", w.file("qa.yaml", "task: {name: qa, type: question_answering, max_query_length: 8, "
                                          "stride: 8}\n"), "--file", squad_file(w)],
        "no trained classification head for task 'qa' (2 outputs)"),
    Row("evaluate", "tokenizer-json-truncated", lambda w: ["--tokenizer", tok_cut_json(w, w.ft, "t", "tokenizer.json")],
        "{w.tmp}/in/t"),
    Row("evaluate", "file-and-dataset", lambda w: ["--dataset", saved_task_dict(w)],
        "argument --dataset: not allowed with argument --file"),
    Row("evaluate", "dataset-unknown-split",
        lambda w: ["evaluate", "--model", w.ft, "--dataset", saved_task_dict(w), "--split", "test"],
        "{w.tmp}/in/task-dict: no split 'test' (--split); the folder holds train, validation", base=False),
    Row("evaluate", "attack-eps-negative", lambda w: ["--attack-eps", -1], "--attack-eps must be at least 0, got -1.0"),
    Row("evaluate", "attack-steps-0", lambda w: ["--attack-steps", 0], "--attack-steps must be at least 1, got 0"),
    Row("evaluate", "attack-norm-unknown", lambda w: ["--attack-norm", "l3"],
        "argument --attack-norm: invalid choice: 'l3'"),
    Row("evaluate", "batch-size-0", lambda w: ["--batch-size", 0], "--batch-size"),
    Row("evaluate", "max-seq-len-0", lambda w: ["--max-seq-len", 0], "--max-seq-len"),
    Row("evaluate", "max-seq-len-past-positions", lambda w: ["--max-seq-len", 100],
        "--max-seq-len is 100 but the model in"),
    Row("evaluate", "output-is-a-directory", lambda w: ["--output", w.folder("results")],
        "--output {w.tmp}/in/results: a directory, not a file"),
    Row("evaluate", "output-under-a-file", lambda w: ["--output", w.file("taken", "mine") / "result.json"],
        "--output {w.tmp}/in/taken/result.json: '{w.tmp}/in/taken' is a file, not a directory"),
    Row("evaluate", "output-read-only", lambda w: ["--output", read_only(w) / "result.json"], "{w.tmp}/in/ro",
        (NOT_AS_ROOT,)),

    # ---- quickstart: the output holds an earlier quickstart, which it would replace ------------------------
    Row("quickstart", "pretrain-steps-0", lambda w: ["--pretrain-steps", 0], "--pretrain-steps"),
    Row("quickstart", "pretrain-steps-negative", lambda w: ["--pretrain-steps", -5], "--pretrain-steps"),
    Row("quickstart", "finetune-epochs-0", lambda w: ["--finetune-epochs", 0], "--finetune-epochs"),
    Row("quickstart", "pretrain-steps-not-a-number", lambda w: ["--pretrain-steps", "many"],
        "argument --pretrain-steps: invalid int value: 'many'"),
    Row("quickstart", "output-is-a-file", lambda w: ["--output", w.file("taken", "mine")], "{w.tmp}/in/taken"),
    Row("quickstart", "output-under-a-file", lambda w: ["--output", w.file("taken", "mine") / "qs"],
        "{w.tmp}/in/taken"),
    Row("quickstart", "output-read-only", lambda w: ["--output", read_only(w) / "qs"], "{w.tmp}/in/ro", (NOT_AS_ROOT,)),
    Row("quickstart", "output-holds-other-work", lambda w: ["--output", other_work(w)],
        "is not empty and is not an earlier quickstart"),
    Row("quickstart", "samples-missing", lambda w: [], "lacks its samples"),  # the samples moved away: see the test

    # ---- export: the output holds an earlier export; the checkpoint's files are never read -----------------
    Row("export", "checkpoint-missing", lambda w: ["export", w.tmp / "nope", "--output", w.tmp / "e"],
        "checkpoint '{w.tmp}/nope' not found", base=False),
    Row("export", "checkpoint-a-file", lambda w: ["export", w.file("step-00000002", "x"), "--output", w.tmp / "e"],
        "'{w.tmp}/in/step-00000002' is a file, not a checkpoint directory", base=False),
    Row("export", "checkpoint-incomplete",
        lambda w: ["export", fake_checkpoint(w, partial=True), "--output", w.tmp / "e"],
        "'{w.tmp}/in/run/checkpoints/step-00000004.partial' is an incomplete checkpoint (a run stopped while writing "
        "it): export a complete one, e.g. {w.tmp}/in/run/checkpoints/step-00000002", base=False),
    Row("export", "checkpoint-a-run-directory",
        lambda w: ["export", fake_checkpoint(w).parent.parent, "--output", w.tmp / "e"],
        "'{w.tmp}/in/run' is not a pretraining checkpoint (no engine/mp_rank_00_model_states.pt): a run directory: "
        "name one of its checkpoints, e.g. {w.tmp}/in/run/checkpoints/step-00000002", base=False),
    Row("export", "checkpoint-a-model-directory", lambda w: ["export", w.model, "--output", w.tmp / "e"],
        "'{w.model}' is not a pretraining checkpoint", base=False),
    Row("export", "run-without-config",
        lambda w: ["export", fake_checkpoint(w, config=False), "--output", w.tmp / "e"],
        "{w.tmp}/in/run/config.yaml not found: the checkpoint's run directory holds no config", base=False),
    Row("export", "run-config-without-tokenizer",
        lambda w: ["export", fake_checkpoint(w, config="max_steps: 2\n"), "--output", w.tmp / "e"],
        "{w.tmp}/in/run/config.yaml: data.tokenizer is not set and the run directory holds no tokenizer/", base=False),
    Row("export", "run-tokenizer-gone",
        lambda w: ["export", fake_checkpoint(w, config=f"data: {{tokenizer: {w.tmp / 'moved'}}}\n"), "--output",
                   w.tmp / "e"],
        "tokenizer '{w.tmp}/moved' not found (data.tokenizer in {w.tmp}/in/run/config.yaml)", base=False),
    Row("export", "run-config-malformed",
        lambda w: ["export", fake_checkpoint(w, config="data: [unclosed\n"), "--output", w.tmp / "e"],
        "{w.tmp}/in/run/config.yaml:2: malformed YAML", base=False),
    Row("export", "checkpoint-weights-corrupt", lambda w: [],
        "{w.tmp}/in/run/checkpoints/step-00000002/engine: cannot read the engine's weights (UnpicklingError"),
    Row("export", "output-holds-an-export-without-overwrite", lambda w: ["--output", w.prior],
        "--output {w.prior} already exists: pass --overwrite to replace it"),
    Row("export", "output-is-a-file", lambda w: ["--output", w.file("taken", "mine"), "--overwrite"],
        "--output {w.tmp}/in/taken: '{w.tmp}/in/taken' is a file, not a directory"),
    Row("export", "output-read-only", lambda w: ["--output", read_only(w) / "e"], "'{w.tmp}/in/ro' is not writable",
        (NOT_AS_ROOT,)),
    Row("export", "output-is-the-checkpoint",
        lambda w: ["export", fake_checkpoint(w), "--output", fake_checkpoint(w), "--overwrite"],
        "would replace the checkpoint {w.tmp}/in/run/checkpoints/step-00000002 or its run", base=False),
    Row("export", "output-is-the-run", lambda w: ["--output", w.tmp / "in" / "run", "--overwrite"],
        "would replace the checkpoint {w.tmp}/in/run/checkpoints/step-00000002 or its run"),
    Row("export", "output-missing", lambda w: ["export", fake_checkpoint(w)],
        "the following arguments are required: --output", base=False),
]


def read_only(w: W) -> Path:
    folder = w.tmp / "in" / "ro"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    return folder


def fake_checkpoint(w: W, config: str | bool = True, partial: bool = False) -> Path:
    """A run directory as `alum pretrain` leaves it, with stand-ins for the checkpoint's files (the checks
    before any work never read them): `in/run/checkpoints/step-00000002/`, and with `partial` a
    `step-00000004.partial/` beside it. `config`: the run's config.yaml (True: one naming the tokenizer; False:
    none)."""
    run = w.tmp / "in" / "run"
    if config is not False:
        w.file("run/config.yaml", f"data: {{tokenizer: {w.tok}}}\n" if config is True else config)
    for name in ("step-00000002", *(["step-00000004.partial"] if partial else [])):
        w.file(f"run/checkpoints/{name}/engine/mp_rank_00_model_states.pt", b"\x00" * 64)
    return run / "checkpoints" / ("step-00000004.partial" if partial else "step-00000002")


SQUAD_QAS = [{"id": "q1", "question": "who ruled", "answers": [{"text": "the king", "answer_start": 0}]},
             {"id": "q2", "question": "who ate", "answers": [], "is_impossible": True}]


def squad_file(w: W, name: str = "train.json", paragraphs: list | None = None) -> Path:
    """A SQuAD JSON file: `paragraphs` (by default one, whose context holds the answer of SQUAD_QAS's q1)."""
    paragraphs = [{"context": "the king ruled the land", "qas": SQUAD_QAS}] if paragraphs is None else paragraphs
    if paragraphs and isinstance(paragraphs[0], dict) and "id" in paragraphs[0]:  # questions: one paragraph
        paragraphs = [{"context": "the king ruled the land", "qas": paragraphs}]
    return w.file(name, json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}))


def squad_args(w: W, train: Path | None = None) -> list:
    return ["--config", "squad_v2", "--train-file", train or squad_file(w), "--dev-file", squad_file(w, "dev.json"),
            "data.max_seq_len=32", "task.max_query_length=8", "task.stride=8"]


def reg_file(w: W) -> Path:
    return write_tsv(w.tmp / "reg.tsv", ["sentence1", "sentence2", "score"], [["a", "b", 1.5], ["c", "d", "high"]])


def bare_model(w: W) -> Path:
    bare = w.tmp / "in" / "bare"
    bare.mkdir(parents=True)
    shutil.copy(w.model / "config.json", bare / "config.json")
    return bare


def no_checkpointing(w: W) -> Path:
    """A tiny ALBERT (a family transformers gives no gradient checkpointing) with the tiny BERT's tokenizer."""
    from transformers import AlbertConfig, AlbertForMaskedLM

    folder = w.tmp / "in" / "no-gc"
    bert = json.loads((w.model / "config.json").read_text())
    AlbertForMaskedLM(AlbertConfig(vocab_size=bert["vocab_size"], pad_token_id=bert["pad_token_id"], hidden_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                   embedding_size=16, max_position_embeddings=64)).save_pretrained(folder)
    for path in w.model.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(path, folder / path.name)
    return folder


def without_tokenizer(w: W, model: Path) -> Path:
    """A copy of a model directory with everything but its tokenizer (as `save_pretrained` of a model alone)."""
    folder = w.tmp / "in" / "no-tok"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "alum_task.json"):
        if (model / name).is_file():
            shutil.copy(model / name, folder / name)
    return folder


def specials_only(w: W) -> Path:
    """A tokenizer directory whose vocabulary is its special tokens and nothing else."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    folder = w.tmp / "in" / "specials"
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])},
                                     unk_token="[UNK]"))
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(folder)
    return folder


def saved_dataset(w: W) -> Path:
    """The corpus as `datasets.Dataset.save_to_disk` writes it: Arrow files and their JSON descriptions."""
    import datasets

    folder = w.tmp / "in" / "saved"
    datasets.Dataset.from_dict({"text": w.lines().splitlines()}).save_to_disk(str(folder))
    return folder


def saved_dict(w: W) -> Path:
    """A corpus saved as a DatasetDict with a validation split only."""
    import datasets

    folder = w.tmp / "in" / "saved-dict"
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"text": w.lines().splitlines()})}).save_to_disk(
        str(folder))
    return folder


def saved_task_dict(w: W, column: str = "sentence", names: list[str] | None = None) -> Path:
    """SST-2 rows as the Hub holds them (a ClassLabel label), saved as a DatasetDict of train and validation."""
    import datasets

    features = datasets.Features({column: datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names or ["negative", "positive"])})
    rows = datasets.Dataset.from_dict({column: ["a fine film", "dull", "warm", "cold"], "label": [1, 0, 1, 0]}, features)
    folder = w.tmp / "in" / "task-dict"
    datasets.DatasetDict({"train": rows, "validation": rows}).save_to_disk(str(folder))
    return folder


def tagged_parquet(w: W, words: list[list[str]], tags: list[list[str]]) -> Path:
    """Sentences as a parquet file of the conll2003 shape (tokens, ner_tags)."""
    import datasets

    path = w.tmp / "in" / "tags.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"tokens": words, "ner_tags": tags}).to_parquet(str(path))
    return path


def squad_parquet(w: W, answers: dict) -> Path:
    """One question as a parquet file of the `squad` shape, with the given answers."""
    import datasets

    path = w.tmp / "in" / "squad.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"id": ["1"], "title": ["t"], "context": ["Paris is nice"], "question": ["Where?"],
                                "answers": [answers]}).to_parquet(str(path))
    return path


def finetune_dataset_base(w: W) -> list:
    """finetune_base with a dataset (the row's, last) in place of the files."""
    return ["finetune", "--config", "sst2", "--model", w.model, "--output", w.tmp / "ft-out", "--max-steps", 1,
            "train.eval_every=1", "--dataset"]


def arrow_file(w: W) -> Path:
    """An Arrow file of `datasets` (as its cache holds them), given as if it were text."""
    return shutil.copy(next(saved_dataset(w).glob("*.arrow")), w.tmp / "in" / "cache-5f2d.arrow")


def cut_weights(w: W) -> Path:
    return tok_cut_json(w, w.model, "m", "model.safetensors")


def task_file(w: W, task: dict) -> Path:
    copy = w.copy(w.ft, "f")
    (copy / "alum_task.json").write_text(json.dumps(task))
    return copy


def other_work(w: W) -> Path:
    folder = w.tmp / "in" / "thesis"
    folder.mkdir(parents=True)
    (folder / "chapter1.tex").write_text("precious")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: the shared inputs and the previous runs (built once), copied into each row's directory.


@pytest.fixture(scope="module")
def built(tmp_path_factory, tokenizer_dir, model_dir, small_corpus):
    """The fine-tuned model and the previous run of each command, made once."""
    from alum.finetune.tasks import task_from

    root = tmp_path_factory.mktemp("bad-input-built")
    ft = build_model_dir(root / "ft", vocab_size=_vocab(model_dir), head=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, ft / name)
    (ft / "alum_task.json").write_text(json.dumps(task_from("sst2").to_dict(), indent=2))

    prior = {}
    tok = root / "prior-tokenizer"
    code = main(["tokenizer", "train", "--files", str(small_corpus), "--vocab-size", "300", "--output", str(tok),
                 "--no-progress"])
    assert code == 0
    prior["tokenizer train"] = tok
    prior["pretrain"] = fake_run(root / "prior-pretrain", {
        "config.yaml": "max_steps: 2\n", "metrics.jsonl": '{"step": 1, "loss": 6.0}\n',
        "checkpoints/step-00000002/state.json": '{"step": 2}\n', "final/config.json": "{}\n",
        "final/model.safetensors": b"\x00" * 64})
    prior["finetune"] = fake_run(root / "prior-finetune", {
        "config.yaml": "model: m\n", "metrics.json": '{"mean": 0.5}\n', "best/config.json": "{}\n",
        "best/model.safetensors": b"\x01" * 64, "seed-1/metrics.jsonl": '{"step": 1}\n',
        "seed-1/result.json": "{}\n"})
    prior["prepare"] = fake_run(root / "prior-prepare", {
        "manifest.json": '{"format": "alum-prepared-corpus/1", "blocks": 1}\n', "shards/part-00000.arrow": b"\x02" * 64})
    prior["export"] = fake_run(root / "prior-export", {
        "config.json": "{}\n", "model.safetensors": b"\x03" * 64, "tokenizer.json": "{}\n"})
    prior["quickstart"] = fake_run(root / "prior-quickstart", {
        "quickstart.json": "[]\n", "tokenizer/tokenizer.json": "{}\n", "pretrain/metrics.jsonl": "{}\n",
        "finetune/metrics.json": "{}\n", "evaluate.json": "{}\n"})
    return {"ft": ft, "prior": prior}


def _vocab(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def fake_run(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return folder


@pytest.fixture
def workspace(request, tmp_path, built, tokenizer_dir, model_dir, small_corpus, monkeypatch) -> W:
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here, and be seen
    (tmp_path / "data").mkdir()
    train, dev = sst2_subset(tmp_path / "data", 16, 8)
    params = request.node.callspec.params
    command = params["row"].command if "row" in params else params["command"]
    source = built["prior"].get(command)
    prior = tmp_path / "out"
    if source is not None:
        shutil.copytree(source, prior)
    return W(tmp_path, tokenizer_dir, model_dir, built["ft"], small_corpus, train, dev, prior)


def argv_of(row: Row, w: W) -> list[str]:
    args = [*BASES[row.command](w), *row.args(w)] if row.base else row.args(w)
    return [str(a) for a in args]


def one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    # as a terminal shows it: a progress bar cleared with carriage returns before the error leaves no line
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith(f"alum {command.split()[0]}") and ": error: " in lines[0], lines[0]
    return lines[0]


def row_params(rows: list[Row]):
    return [pytest.param(r, id=f"{r.command.replace(' ', '-')}:{r.id}", marks=r.marks) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# In this process: the table.


@pytest.mark.parametrize("row", row_params(ROWS))
def test_bad_input(row: Row, workspace: W, capsys, monkeypatch):
    if row.id == "samples-missing":
        import alum.commands.quickstart as quickstart

        monkeypatch.setattr(quickstart, "CORPUS", workspace.tmp / "gone" / "wikitext-2-raw.sample.txt")
    argv = argv_of(row, workspace)
    capsys.readouterr()
    before = snapshot(workspace.tmp)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit status {code}:\n{err}"
    line = one_error_line(err, row.command)
    print(line)  # `pytest -rP` shows every row's message
    assert row.expect.format(w=workspace) in line, line
    assert snapshot(workspace.tmp) == before, "the run wrote, removed or changed files"
    if row.command == "evaluate":
        assert not out.strip(), "a model was evaluated before the input was known to be good"


# ---------------------------------------------------------------------------------------------------------------
# Through the real entry point, in a process of its own.


def alum_process(argv: list, cwd: Path, timeout: int = 180, preexec=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                                  "MASTER_PORT")}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "alum.cli", *map(str, argv)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, preexec_fn=preexec)


SUBPROCESS_ROWS = ["tokenizer train:corpus-missing", "tokenizer stats:tokenizer-json-truncated",
                   "pretrain:override-unknown-key", "finetune:dev-label-outside-the-set",
                   "evaluate:task-file-truncated", "quickstart:pretrain-steps-not-a-number",
                   "export:checkpoint-incomplete"]


@pytest.mark.slow
@pytest.mark.parametrize("row", row_params([r for r in ROWS if f"{r.command}:{r.id}" in SUBPROCESS_ROWS]))
def test_bad_input_through_the_entry_point(row: Row, workspace: W):
    argv = argv_of(row, workspace)
    before = snapshot(workspace.tmp)
    done = alum_process(argv, workspace.tmp)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr, row.command)
    assert row.expect.format(w=workspace) in line, line
    assert snapshot(workspace.tmp) == before


def full_disk(limit: int):
    """In the child: files cannot grow past `limit` bytes; a write past it fails with EFBIG (not a signal)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


FULL_DISK = [
    ("tokenizer train", "full-disk", "cannot write the tokenizer to '{w.prior}'", ()),
    ("pretrain", "full-disk", "cannot write", ()),
    ("finetune", "full-disk", "cannot write", ()),
]


@pytest.mark.slow
@pytest.mark.parametrize("command, row_id, expect", [pytest.param(*r[:3], id=f"{r[0].replace(' ', '-')}:{r[1]}",
                                                                  marks=r[3]) for r in FULL_DISK])
def test_full_disk(command, row_id, expect, workspace: W):
    """A write that fails (RLIMIT_FSIZE: files stop at 4 KB) ends in one line naming the output; an earlier run
    in the output directory (tokenizer train --overwrite) stays as it was, and nothing is left beside it. A
    fresh output directory (pretrain, finetune) may hold what was written before the disk filled."""
    argv = [str(a) for a in BASES[command](workspace)]
    fresh = {"pretrain": "pt-out", "finetune": "ft-out"}.get(command)

    def kept():
        return {k: v for k, v in snapshot(workspace.tmp).items() if not fresh or k.split("/")[0] != fresh}

    before = kept()
    done = alum_process(argv, workspace.tmp, timeout=300, preexec=full_disk(4096))
    assert done.returncode == 2, done.stderr
    # the disk fills mid-run: the training's progress lines may come first, then the error, alone and last
    lines = [line.rsplit("\r", 1)[-1] for line in done.stderr.split("\n")]
    lines = [line for line in lines if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    line = one_error_line(errors[-1] if errors else "", command)
    assert "Traceback" not in done.stderr and errors == [lines[-1]], done.stderr
    assert expect.format(w=workspace) in line and "File too large" in line, line
    assert kept() == before
