"""`alum export`: any pretraining checkpoint (RUN/checkpoints/step-N) as a plain Hugging Face directory with
the run's tokenizer, read in this one process whatever the ZeRO stage it was written under."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="a pretraining checkpoint as a Hugging Face directory (AutoModelForMaskedLM, AutoTokenizer, fill-mask)",
        description="Exports RUN/checkpoints/step-N, written under any ZeRO stage, with the run's tokenizer, as "
                    "the run's own final/ is written. One process; no launcher.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint directory, RUN/checkpoints/step-N")
    p.add_argument("--output", required=True, metavar="DIR", help="the Hugging Face directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace what --output holds")
    p.set_defaults(run=run)


def run(args) -> int:
    from alum.pretrain.export import export_checkpoint  # torch: imported once the command line is read

    output = export_checkpoint(args.checkpoint, args.output, overwrite=args.overwrite)
    print(f"exported {args.checkpoint} to {output} (AutoModelForMaskedLM / AutoTokenizer)")
    return 0
