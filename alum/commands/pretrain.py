"""`alum pretrain`: masked-LM pretraining, then ALUM (or any core method) for the final steps; and
`alum prepare`: a corpus tokenised and packed once, for any number of pretraining runs (`--data-dir`)."""

from __future__ import annotations

import argparse
import sys

from alum.commands.flags import Flag, add_flags, flag_values

FLAGS = [
    Flag("--tokenizer", "data.tokenizer", "tokenizer directory", metavar="DIR"),
    Flag("--files", "data.files", "corpus files, globs or directories", metavar="PATH", nargs="+"),
    Flag("--data-dir", "data.prepared", "a corpus made by `alum prepare`: train from it without reading the text",
         metavar="DIR"),
    Flag("--block-size", "data.block_size", "tokens per training block (with --data-dir: the prepared corpus's)",
         type=int, metavar="N"),
    Flag("--split", "data.split", "the split of a save_to_disk folder holding a DatasetDict (default: train)",
         metavar="NAME"),
    Flag("--text-column", "data.text_column", "column of JSON lines / CSV / parquet / arrow files and save_to_disk folders", metavar="NAME"),
    Flag("--strict", "data.strict", "stop at the first undecodable line (default: skip and count)", const=True),
    Flag("--output", "output", "output directory", metavar="DIR"),
    Flag("--max-steps", "max_steps", "steps of the whole schedule", type=int, metavar="N"),
    Flag("--deepspeed", "engine.deepspeed", "a DeepSpeed JSON config, or a shipped one's name (zero2, bf16, ...)",
         metavar="JSON"),
    Flag("--method", "adversarial.method", "the adversarial method of the final phase", metavar="NAME"),
    Flag("--stop-after", "stop_after", "stop after N steps with a checkpoint", type=int, metavar="N"),
]

PREPARE_EXAMPLES = """examples:
  alum prepare --tokenizer tok/ --files 'corpus/*.txt' --output data/prepared --block-size 512
  alum pretrain --config bert-base --tokenizer tok/ --data-dir data/prepared
The run checks the manifest against its tokenizer, block size and whole-word masking, and refuses a mismatch."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="masked-LM pretraining that switches to adversarial training for the final steps",
        description="Config keys may be overridden as key.sub=value after the flags, e.g. optim.lr=3e-4. "
                    "The corpus is --files (prepared into a cache on the first run) or --data-dir "
                    "(prepared once by `alum prepare`).",
    )
    p.add_argument("--config", help="a YAML config, or a shipped preset's name (tiny, bert-base, ...)")
    add_flags(p, FLAGS)
    p.add_argument("--resume", action="store_true", help="continue, exactly, from the latest complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output directory")
    p.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    p.add_argument("overrides", nargs="*", metavar="key.sub=value")
    p.set_defaults(run=run)

    q = sub.add_parser(
        "prepare",
        help="tokenise and pack a pretraining corpus once, on every core, for `alum pretrain --data-dir`",
        epilog=PREPARE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    q.set_defaults(run=run_prepare)


def run(args) -> int:
    from alum.config import load_config, parse_override
    from alum.pretrain.config import PretrainConfig
    from alum.pretrain.data import take_from_manifest
    from alum.pretrain.train import run as train
    from alum.training.metrics import say

    given = flag_values(args, FLAGS)
    cfg = load_config(PretrainConfig, args.config, args.overrides, given, kind="pretrain")
    on_command_line = {*given, *(parse_override(o)[0] for o in args.overrides)}
    if "data.prepared" in given and "data.files" not in on_command_line:
        cfg.data.files = []  # --data-dir stands in for the preset's files; with --files too, they are checked
    if cfg.data.prepared is not None:
        taken = take_from_manifest(cfg.data, on_command_line)
        if taken:
            say(f"from the prepared corpus's manifest: {', '.join(taken)}")
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    # Ctrl-C stops with a checkpoint, yet the command was interrupted: a script running it must not go on
    return 130 if result.get("signal") == "SIGINT" else 0


def run_prepare(args) -> int:
    from pathlib import Path

    from alum.corpus import ensure_nonempty, resolve_files
    from alum.errors import UserError
    from alum.io.hf_dirs import load_tokenizer
    from alum.io.publish import check_directory
    from alum.pretrain import prepare

    if args.block_size < 8:
        raise UserError("--block-size must be at least 8")
    load_tokenizer(args.tokenizer, "--tokenizer")  # here, so a bad directory's error names this command's flag
    files = resolve_files(args.files)
    ensure_nonempty(files, args.text_column)
    output = Path(args.output)
    check_directory(output)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise UserError(f"--output {output} is not empty: pass --overwrite to replace it")
    manifest = prepare.prepare(files, args.tokenizer, output, block_size=args.block_size, whole_word=args.whole_word,
                               text_column=args.text_column, strict=args.strict, num_proc=args.num_proc,
                               progress=not args.no_progress)
    print(f"prepared {output}: {manifest['blocks']:,} blocks of {manifest['block_size']} tokens from "
          f"{manifest['text_bytes'] / 1e6:,.1f} MB of text ({manifest['texts']:,} texts, "
          f"{prepare.skipped_lines(manifest)}) in {len(manifest['shards'])} shard(s), "
          f"{manifest['processes']} process(es), {manifest['seconds']:.1f}s; train with --data-dir {output}")
    unknown = prepare.unknown_warning(manifest)
    if unknown:
        print(f"alum prepare: warning: {unknown}", file=sys.stderr)
    return 0
