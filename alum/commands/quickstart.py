"""`alum quickstart`: the whole pipeline on the samples shipped in data/, in minutes on a laptop CPU.

train a BPE tokenizer -> pretrain a tiny encoder (masked LM, then ALUM) -> fine-tune it on SST-2 with SMART
-> evaluate it, clean and under an embedding attack -> a table of what each stage made and where it is.
Each stage is its package's `run`, called here in turn with the config `stage_configs` built and checked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from alum.config import load_config
from alum.errors import UserError
from alum.presets import sample
from alum.finetune.config import EvaluateConfig, load_finetune_config
from alum.pretrain.config import PretrainConfig
from alum.tokenizer import train as tokenizer_stage
from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.output import check_target

CORPUS = sample("corpus/wikitext-2-raw.sample.txt")
SST2 = sample("glue/SST-2")
MARKER = "quickstart.json"  # written last: a directory holding it is a finished quickstart, safe to replace


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="run the whole pipeline on the embedded samples (a few minutes on a CPU)")
    p.add_argument("--output", default="runs/quickstart", help="output directory (default: runs/quickstart)")
    p.add_argument("--overwrite", action="store_true", help="replace a directory that is not an earlier quickstart")
    p.add_argument("--pretrain-steps", type=int, default=600, help="pretraining steps, half of them ALUM (600)")
    p.add_argument("--finetune-epochs", type=int, default=3, help="SMART fine-tuning epochs (3)")
    p.set_defaults(run=run)


def run(args) -> int:
    # the training stages import torch: here, once the command line is read, so that `alum --help` stays quick
    from alum.finetune import evaluate, run as finetune
    from alum.pretrain import train as pretrain

    for needed in (CORPUS, SST2 / "train.tsv", SST2 / "dev.tsv"):
        if not needed.is_file():
            raise UserError(f"{needed} is missing: this install of alum lacks its samples (the alum.data package)")
    for flag, value in (("--pretrain-steps", args.pretrain_steps), ("--finetune-epochs", args.finetune_epochs)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    out = Path(args.output)
    configs = stage_configs(out, args)  # every stage's config checked before the output is touched
    prepare_output(out, args.overwrite)
    steps = []

    with stage(steps, "tokenizer", "byte-level BPE, 4,096 tokens, on a 600 KB WikiText-2 sample"):
        stats = tokenizer_stage.run(configs["tokenizer"])
        steps[-1].update(where=out / "tokenizer", result=f"{stats.get('vocab_size', 4096)} tokens")

    with stage(steps, "pretrain", f"tiny BERT, {args.pretrain_steps} steps: masked LM, then ALUM for the second half"):
        final = pretrain.run(configs["pretrain"])
        if final.get("stopped"):  # Ctrl-C or SIGTERM: the pretraining checkpointed and stopped, and so does this
            raise KeyboardInterrupt
        steps[-1].update(where=out / "pretrain" / "final", plot=final.get("loss_curve"),
                         result=f"validation MLM loss {final.get('val_loss', float('nan')):.3f}, "
                                f"accuracy {final.get('val_accuracy', float('nan')):.3f}")

    with stage(steps, "finetune", f"SST-2 (4,000-sentence sample), SMART, {args.finetune_epochs} epochs"):
        summary = finetune.run(configs["finetune"])
        plots = sorted((out / "finetune").glob("*.png"))
        steps[-1].update(where=out / "finetune" / "best", plot=plots[0] if plots else None,
                         result=f"dev {summary.get('metric', 'accuracy')} {summary.get('mean', float('nan')):.3f}")

    with stage(steps, "evaluate", "SST-2 dev, clean and under a 5-step PGD attack on the embeddings"):
        metrics = evaluate.run(configs["evaluate"])
        (out / "evaluate.json").write_text(json.dumps(metrics, indent=2))
        clean = metrics.get("accuracy", float("nan"))
        attacked = metrics.get("attack_accuracy", float("nan"))
        steps[-1].update(where=out / "evaluate.json", result=f"accuracy {clean:.3f}, under attack {attacked:.3f}")

    (out / MARKER).write_text(json.dumps([{k: str(v) for k, v in s.items()} for s in steps], indent=2))
    print(table(steps))
    return 0


def stage_configs(out: Path, args) -> dict:
    """The config of each stage, read and checked (a bad one fails here, before any stage runs)."""
    steps = args.pretrain_steps
    return {
        "tokenizer": load_config(TokenizerConfig, "bytelevel-bpe", ["bpe.vocab_size=4096"], kind="tokenizer",
                                 flags={"corpus.files": [str(CORPUS)], "output.dir": str(out / "tokenizer")}),
        "pretrain": load_config(PretrainConfig, "tiny", [
            f"max_steps={steps}", f"eval_every={max(1, steps // 6)}", "optim.lr=2e-3", f"save_every={steps}",
            f"log_every={max(1, steps // 30)}"], kind="pretrain",
            flags={"data.tokenizer": str(out / "tokenizer"), "data.files": [str(CORPUS)],
                   "output": str(out / "pretrain")}),
        "finetune": load_finetune_config("sst2", [
            "adversarial.method=smart", "train.seeds=1", f"train.epochs={args.finetune_epochs}", "optim.lr=1e-3",
            "optim.warmup=0.1"],
            flags={"model": str(out / "pretrain" / "final"), "output": str(out / "finetune"),
                   "data.train_file": str(SST2 / "train.tsv"), "data.dev_file": str(SST2 / "dev.tsv")}),
        # `alum evaluate`'s defaults: the task saved with the model, a 5-step PGD attack of radius 0.01
        "evaluate": EvaluateConfig(models=[str(out / "finetune" / "best")], file=str(SST2 / "dev.tsv")),
    }


def prepare_output(out: Path, overwrite: bool) -> None:
    """Replace an earlier quickstart (or anything, with --overwrite); never a directory of other work."""
    check_target(out, overwrite=True)  # a directory, or one that can be made; whether to replace it is below
    if out.exists() and any(out.iterdir()):
        if not (overwrite or (out / MARKER).is_file()):
            raise UserError(f"{out} is not empty and is not an earlier quickstart: choose another --output, "
                            "or pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def stage(steps: list[dict], name: str, what: str):
    print(f"\n=== {len(steps) + 1}/4 {name}: {what}", flush=True)
    record = {"stage": name, "what": what}
    steps.append(record)
    started = time.perf_counter()
    yield record
    record["seconds"] = round(time.perf_counter() - started, 1)


def table(steps: list[dict]) -> str:
    rows = [("stage", "time", "result", "where")]
    for s in steps:
        rows.append((s["stage"], f"{s['seconds']:.0f} s", s.get("result", ""), str(s.get("where", ""))))
        if s.get("plot"):
            rows.append(("", "", "plot", str(s["plot"])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(s["seconds"] for s in steps)
    return "\nalum quickstart: done in {:.0f} s\n".format(total) + "\n".join(lines)
