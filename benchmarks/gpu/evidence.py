"""The GPU run's evidence part: a real pretrained encoder (MiniLM) fine-tuned on full SST-2 and full RTE with
`none`, `smart` and `freelb`, seed after seed until the part's time budget is spent.

    python benchmarks/gpu/evidence.py --model DIR --glue DIR --out DIR --budget SECONDS [--extra FILE ...]

Seeds run in rounds (seed 1 of every task and method, then seed 2, ...), so that however many rounds fit,
each method has as many seeds as the others. A round, or a run within it, starts only if the last time it
took still fits before the deadline. Every run's figures go into OUT/evidence.json as soon as it ends (a
run stopped from outside keeps what was done), with how many seeds each method completed.

Extra evaluation files (any file in a task's format: `rte:FILE`, or a bare FILE whose header names the
task's columns) are scored by every trained model (its best checkpoint, clean and under the attack), in
the same run. `--tiny` trains a few updates on a small subset: the same code path, for a CPU check.

The fine-tuning itself is the finetune stage's own (`alum.finetune`: prepare, train_seed, evaluate).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
METHODS = ["none", "smart", "freelb"]

# Full training sets. On one H200 in bf16 an SST-2 epoch at 128 sequences per update is ~530 updates.
TASKS = {
    "sst2": dict(folder="SST-2", overrides=["data.max_seq_len=64", "engine.micro_batch_size=128", "train.epochs=1",
                                            "train.eval_every=132", "optim.lr=1e-4"]),
    "rte": dict(folder="RTE", overrides=["data.max_seq_len=128", "engine.micro_batch_size=32", "train.epochs=3",
                                         "optim.lr=5e-5"]),
}
COMMON = ["optim.warmup=0.1", "attack.eps=0.01", "attack.steps=5", "wandb.enabled=false"]
# A few updates on a small subset of each task: the same path as the GPU run, in a minute on a CPU.
TINY = ["data.train_subset=64", "data.dev_subset=32", "data.max_seq_len=32", "engine.micro_batch_size=16",
        "train.max_steps=4", "train.eval_every=2", "attack.steps=1", "train.eval_batch_size=32"]


def extra_files(specs: list[str]) -> list[tuple[str, Path]]:
    """(task, path) for each `task:path`, or bare path whose header row names one task's text columns."""
    from alum.finetune.tasks import GLUE

    out = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if sep and name in TASKS:
            out.append((name, Path(rest)))
            continue
        path = Path(spec)
        header = path.read_text(encoding="utf-8-sig").splitlines()[0].split("\t") if path.is_file() else []
        # the task whose text columns are all in the header, the one with the most columns first (RTE's
        # sentence1/sentence2 before SST-2's sentence)
        fits = sorted((t for t in TASKS if set(GLUE[t]["text_columns"]) <= set(header)),
                      key=lambda t: -len(GLUE[t]["text_columns"]))
        if not fits:
            raise SystemExit(f"evidence.py: {spec}: cannot tell its task from its header {header}; "
                             f"name it as TASK:FILE ({', '.join(TASKS)})")
        out.append((fits[0], path))
    return out


def write_json(path: Path, data: dict) -> None:
    """Written aside and renamed: a kill at any moment leaves the last complete file."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def summarise(runs: list[dict], metric: str) -> dict:
    """Per method: seeds done, mean and std of the dev and attack metric, seconds per update, extra files."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        dev = [r["dev"][metric] for r in mine]
        attack = [r["dev"].get(f"attack_{metric}") for r in mine if f"attack_{metric}" in r["dev"]]
        out[method] = {
            "seeds": len(mine), "dev_mean": statistics.fmean(dev), "dev_std": statistics.stdev(dev) if len(dev) > 1 else 0.0,
            "attack_mean": statistics.fmean(attack) if attack else None,
            "seconds_per_update": statistics.fmean(r["seconds_per_update"] for r in mine),
            "extra": {f: statistics.fmean(r["extra"][f][metric] for r in mine) for f in mine[0]["extra"]},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a local HF encoder directory (with --tiny: default, a tiny one built here)")
    p.add_argument("--glue", required=True, help="a folder with SST-2/ and RTE/ (train.tsv, dev.tsv)")
    p.add_argument("--out", required=True, help="evidence.json goes here")
    p.add_argument("--logs", help="each run's metrics.jsonl (default: OUT/evidence)")
    p.add_argument("--budget", type=float, required=True, help="seconds for the whole part")
    p.add_argument("--seeds", type=int, default=3, help="at most this many seeds")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--extra", nargs="*", default=[], help="more evaluation files: TASK:FILE or FILE")
    p.add_argument("--tiny", action="store_true", help="a few updates on a small subset (a CPU check)")
    args = p.parse_args(argv)
    if not (args.model or args.tiny):
        p.error("--model is required (or --tiny)")
    started = time.monotonic()
    deadline = started + args.budget
    os.environ.setdefault("WANDB_MODE", "disabled")

    from alum.finetune.config import load_finetune_config
    from alum.finetune.data import Collator, load_task_file
    from alum.finetune.evaluate import evaluate
    from alum.finetune.model import make_forward
    from alum.finetune.prepare import prepare
    from alum.finetune.train import train_seed
    from alum.training.metrics import say

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(args.logs) if args.logs else out / "evidence"
    if args.model is None:
        from tiny_model import build  # beside this script

        args.model = str(build(logs / "tiny-model", sorted(Path(args.glue).glob("*/train.tsv"))))
    precision = "bf16" if torch.cuda.is_available() else "fp32"
    extras = extra_files(args.extra)
    record = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "precision": precision, "model": str(args.model), "budget_s": args.budget, "tiny": args.tiny,
              "methods": args.methods.split(","), "seeds_wanted": args.seeds, "tasks": {}, "stopped": None}

    prepared = {}
    for task, spec in TASKS.items():
        folder = Path(args.glue) / spec["folder"]
        if not (folder / "train.tsv").is_file():
            record["tasks"][task] = {"missing": f"no {folder / 'train.tsv'}"}
            say(f"evidence: {task}: skipped, no {folder / 'train.tsv'}")
            continue
        overrides = [f"model={args.model}", f"data.train_file={folder / 'train.tsv'}",
                     f"data.dev_file={folder / 'dev.tsv'}", f"output={logs / task}",
                     f"engine.precision={precision}", *COMMON, *spec["overrides"], *(TINY if args.tiny else [])]
        prep = prepare(load_finetune_config(str(REPO / "configs" / "finetune" / f"{task}.yaml"), overrides))
        files = {str(path): load_task_file(path, prep.task, prep.tokenizer, prep.cfg.data.max_seq_len, "extra")
                 for t, path in extras if t == task}
        prepared[task] = (prep, files)
        record["tasks"][task] = {"overrides": overrides, "metric": prep.task.metric, "train_examples": len(prep.train),
                                 "dev_examples": len(prep.dev), "extra_files": list(files), "runs": [], "summary": {}}
    write_json(out / "evidence.json", record)

    took: dict[tuple[str, str], float] = {}  # the last wall time of each (task, method)

    def fits(keys) -> bool:
        return time.monotonic() + sum(took.get(k, 0.0) for k in keys) <= deadline

    for seed in range(1, args.seeds + 1):
        round_keys = [(t, m) for t in prepared for m in record["methods"]]
        if not fits(round_keys):
            record["stopped"] = f"budget: seed {seed} would not finish in time"
            break
        for task, method in round_keys:
            if not fits([(task, method)]):
                record["stopped"] = f"budget: {task} {method} seed {seed} would not finish in time"
                break
            prep, files = prepared[task]
            scored: dict[str, dict[str, float]] = {}

            def score(result, model, prep=prep, files=files, scored=scored):
                """The best checkpoint of this seed on every extra file, while its weights are loaded."""
                forward = make_forward(model, prep.task.regression)
                for name, data in files.items():
                    batches = torch.utils.data.DataLoader(data, batch_size=prep.cfg.train.eval_batch_size,
                                                          collate_fn=Collator(prep.tokenizer, prep.task.regression))
                    scored[name] = evaluate(model, forward, batches, prep.task, prep.cfg.attack)

            begun = time.monotonic()
            result = train_seed(prep, method, seed, logs / task / method / f"seed-{seed}", on_best=score)
            took[(task, method)] = time.monotonic() - begun
            entry = record["tasks"][task]
            entry["runs"].append({"method": method, "seed": seed, "dev": result.best, "updates": result.updates,
                                  "seconds_per_update": result.seconds_per_update, "wall_s": took[(task, method)],
                                  "adv_skipped": result.adv_skipped, "extra": scored})
            entry["summary"] = summarise(entry["runs"], prep.task.metric)
            record["elapsed_s"] = time.monotonic() - started
            write_json(out / "evidence.json", record)
        if record["stopped"]:
            break
    record["elapsed_s"] = time.monotonic() - started
    write_json(out / "evidence.json", record)
    say(f"evidence: {record['stopped'] or 'every seed done'}; {out / 'evidence.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
