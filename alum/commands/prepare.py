"""`alum prepare`: a corpus tokenised and packed once, for any number of pretraining runs (`--data-dir`): the
flags as a PrepareConfig, then the pretrain stage's `prepare.run` (pretrain/prepare.py)."""

from __future__ import annotations

import argparse
import sys

from alum.pretrain import prepare
from alum.pretrain.config import PrepareConfig

EXAMPLES = """examples:
  alum prepare --tokenizer tok/ --files 'corpus/*.txt' --output data/prepared --block-size 512
  alum pretrain --config bert-base --tokenizer tok/ --data-dir data/prepared
The run checks the manifest against its tokenizer, block size and whole-word masking, and refuses a mismatch."""


def add_parser(sub) -> None:
    q = sub.add_parser(
        "prepare",
        help="tokenise and pack a pretraining corpus once, on every core, for `alum pretrain --data-dir`",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--tokenizer", required=True, metavar="DIR", help="tokenizer directory")
    q.add_argument("--files", required=True, nargs="+", metavar="PATH", help="corpus files, globs or directories")
    q.add_argument("--output", required=True, metavar="DIR", help="the prepared corpus's directory")
    q.add_argument("--block-size", type=int, default=128, metavar="N", help="tokens per block (default: 128)")
    q.add_argument("--whole-word", action="store_true", help="keep token offsets, for masking.whole_word")
    q.add_argument("--text-column", default="text", metavar="NAME", help="column of JSON lines / CSV / parquet")
    q.add_argument("--strict", action="store_true", help="stop at the first undecodable line (default: skip)")
    q.add_argument("--num-proc", type=int, default=0, metavar="N", help="processes (default: every core)")
    q.add_argument("--overwrite", action="store_true", help="replace a prepared corpus already in --output")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(run=run)


def run(args) -> int:
    cfg = PrepareConfig(tokenizer=args.tokenizer, files=args.files, output=args.output, block_size=args.block_size,
                        whole_word=args.whole_word, text_column=args.text_column, strict=args.strict,
                        num_proc=args.num_proc, overwrite=args.overwrite, progress=not args.no_progress)
    manifest = prepare.run(cfg)
    print(prepare.describe(manifest, cfg.output))
    unknown = prepare.unknown_warning(manifest)
    if unknown:
        print(f"alum prepare: warning: {unknown}", file=sys.stderr)
    return 0
