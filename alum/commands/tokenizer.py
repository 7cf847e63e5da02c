"""`alum tokenizer train` and `alum tokenizer stats`: stage 1, a BPE tokenizer from a corpus. `train` is the
flags as a TokenizerConfig and the stage's `run` (tokenizer/train.py); `stats` is tokenizer/stats.py's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alum.commands.flags import OVERRIDE, Flag, add_flags, flag_values
from alum.config import dump_yaml, load_config
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.stats import corpus_stats
from alum.tokenizer.train import run as train

TRAIN_EXAMPLES = """examples:
  alum tokenizer train --files corpus/ --vocab-size 30000 --output tok/
  alum tokenizer train --config configs/tokenizer/bert-bpe.yaml bpe.min_frequency=3 --files 'data/*.jsonl.gz' \\
      --output tok/
KEY=VALUE overrides may stand anywhere; one right after --files that is not a file is an override too.
Flags win over overrides, overrides over the config file."""

FLAGS = [
    Flag("--files", "corpus.files", "corpus files, globs or directories", metavar="PATH", nargs="+"),
    Flag("--vocab-size", "bpe.vocab_size", "tokens in the vocabulary", type=int, metavar="N"),
    Flag("--output", "output.dir", "output directory", metavar="DIR"),
    Flag("--overwrite", "output.overwrite", "replace an existing non-empty output directory", const=True),
    Flag("--strict", "corpus.strict", "stop at the first undecodable line (default: skip)", const=True),
    Flag("--split", "corpus.split", "the split of a save_to_disk folder holding a DatasetDict (default: train)",
         metavar="NAME"),
    Flag("--text-column", "corpus.text_column", "column of JSON lines / CSV / parquet / arrow files and save_to_disk folders (default: text)",
         metavar="NAME"),
    Flag("--no-progress", "progress", "no progress bar", const=False),
]


def add_parser(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a BPE tokenizer from a corpus, or measure one on a corpus")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    t = actions.add_parser(
        "train",
        help="train a byte-level or classic BPE tokenizer, saved for transformers",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the examples' lines
    )
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. bpe.min_frequency=3")
    t.add_argument("--config", help="a YAML preset, or a shipped one's name: bytelevel-bpe (the default), "
                   "bert-bpe, sennrich-bpe")
    add_flags(t, FLAGS)
    t.set_defaults(run=run_train)

    s = actions.add_parser("stats", help="vocab size, unknown-token rate, bytes per token, tokens per word")
    s.add_argument("--tokenizer", required=True, metavar="DIR", help="any Hugging Face tokenizer directory")
    s.add_argument("--files", nargs="+", required=True, metavar="PATH", help="corpus files, globs or directories")
    s.add_argument("--text-column", default="text", help="column of JSON lines / CSV / parquet / arrow files and save_to_disk folders")
    s.add_argument("--sample", type=float, default=1.0, help="measure on this fraction of the lines")
    s.add_argument("--strict", action="store_true", help="stop at the first undecodable line (default: skip)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(run=run_stats)


def load_train_config(args):
    """The config file, then KEY=VALUE overrides, then flags; checked against the schema. A --files item that
    looks like `key.sub=value` and is not a file was meant as an override (nargs="+" swallows what follows)."""
    flags = flag_values(args, FLAGS)
    files = flags.pop("corpus.files", [])
    meant = [f for f in files if OVERRIDE.match(f) and not Path(f).exists()]
    files = [f for f in files if f not in meant]
    if files:
        flags["corpus.files"] = files
    return load_config(TokenizerConfig, args.config, [*args.overrides, *meant], flags, kind="tokenizer")


def run_train(args) -> int:
    cfg = load_train_config(args)
    print("alum tokenizer train: resolved config\n" + dump_yaml(cfg), flush=True)
    report = train(cfg, warn=_warn)
    corpus = report["corpus"]
    print(
        f"wrote {cfg.output.dir}: {report['vocab_size']:,} tokens ({report['algorithm']} BPE, "
        f"{report['special_tokens']} special tokens) from {corpus['lines']:,} lines, "
        f"{corpus['text_bytes'] / 1e6:.1f} MB, in {report['training_seconds']:.1f} s"
    )
    return 0


def run_stats(args) -> int:
    stats = corpus_stats(args.tokenizer, args.files, text_column=args.text_column, sample=args.sample,
                         strict=args.strict, progress=not args.no_progress, warn=_warn)
    print(json.dumps(stats.as_json(), indent=2) if args.json else stats.table())
    return 0


def _warn(message: str) -> None:
    print(f"alum tokenizer: warning: {message}", file=sys.stderr)
