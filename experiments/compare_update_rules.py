"""Which update rule for ALUM and SMART: the comparison behind their defaults (docs/update-rules.md).

    python experiments/compare_update_rules.py run       # every job below; finished ones are skipped on a rerun
    python experiments/compare_update_rules.py report    # the tables of docs/update-rules.md

The three rules of `alum.adversarial.functional.ascent_step`, each with its reference:
  gradient   delta = eta g / ||g||                 mt-dnn 4b92661 (ALUM) and 0d6201e (SMART), released with the papers
  normalize  delta = (noise + eta g) / ||.||       mt-dnn cceaa00 (SMART) and f0b40b6 (ALUM), after the papers
  project    delta = Proj_eps(noise + eta g/||g||) the papers' Algorithm 1 (eps = 1e-5)
and the released rule again with the clean pass's dropout masks replayed in the perturbed passes.

(a) SMART fine-tuning of the real MiniLM on SST-2 and RTE, the recipe of docs/finetune-evidence.md, 3 seeds.
(b) The small pretraining reproduction of docs/reproduction.md: one masked-LM run to the switch (N/2 steps),
    forked there into ALUM under each rule and a standard continuation (equal steps for the ALUM runs), each
    then fine-tuned on SST-2 with the reproduction's plain recipe, 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune_minilm  # noqa: E402
import reproduce_alum as R  # noqa: E402

PAPERS = {"sigma": 1e-5, "step_size": 1e-3, "eps": 1e-5}  # the sizes these runs used (no longer the defaults)
RULES = {  # name -> the options it sets (the rest are the method's defaults, detach_embeddings=true for all)
    "gradient": {"constraint": "gradient", "share_dropout": "false", **PAPERS},
    "normalize": {"constraint": "normalize", "share_dropout": "false", **PAPERS},
    "project": {"constraint": "project", "share_dropout": "false", **PAPERS},
    "gradient-shared": {"constraint": "gradient", "share_dropout": "true", **PAPERS},
}
PRETRAIN_RULES = ("gradient", "normalize", "project")


def jobs(args) -> list[R.Job]:
    out, n = Path(args.out), args.steps
    glue = Path(args.glue)
    todo: list[R.Job] = []

    # (a) MiniLM, SMART under each rule
    for rule, options in RULES.items():
        for task in ("sst2", "rte"):
            extra = [f"adversarial.options.smart.{k}={v}" for k, v in options.items()]
            argv = finetune_minilm.command(task, glue, out / "minilm" / f"{task}-{rule}", "smart", extra)[1:]
            todo.append(R.Job(f"minilm/{task}-{rule}", argv, out / "minilm" / f"{task}-{rule}" / "metrics.json"))

    # (b) pretraining: one run to the switch, forked into each rule and a standard continuation
    files = R.corpus_files(Path(args.corpus))
    tok = out / "tokenizer"
    todo.insert(0, R.Job("tokenizer", ["tokenizer", "train", "--files", *files, "--vocab-size", "8192", "--output",
                                       str(tok), "--no-progress"], tok / "tokenizer.json"))

    def pretrain(name: str, extra: list[str]) -> list[str]:
        return ["pretrain", "--config", "configs/pretrain/tiny.yaml", "--tokenizer", str(tok), "--files", *files,
                "--output", str(out / "pretrain" / name), "--max-steps", str(n), "--resume", *R.MODEL, *R.PRETRAIN,
                f"eval_every={max(1, n // 10)}", f"save_every={max(1, n // 4)}", *extra]

    prefix = out / "pretrain" / "prefix"
    todo.insert(1, R.Job("pretrain/prefix", pretrain("prefix", ["adversarial.method=alum", "--stop-after", str(n // 2)]),
                         prefix / "checkpoints" / f"step-{n // 2:08d}" / "state.pt", ["tokenizer"]))

    def fork(name: str):
        def copy() -> None:
            if not (out / "pretrain" / name).exists():
                shutil.copytree(prefix, out / "pretrain" / name, ignore=shutil.ignore_patterns("final"))
        return copy

    continuations = {"standard": R.method_overrides("none")}
    for rule in PRETRAIN_RULES:
        continuations[f"alum-{rule}"] = ["adversarial.method=alum"] + [
            f"adversarial.options.alum.{k}={v}" for k, v in RULES[rule].items()]
    for name, extra in continuations.items():
        todo.insert(2, R.Job(f"pretrain/{name}", pretrain(name, extra), out / "pretrain" / name / "final" / "config.json",
                             ["pretrain/prefix"], prepare=fork(name)))
        data = glue / "SST-2"
        todo.append(R.Job(
            f"finetune/{name}/sst2",
            ["finetune", "--config", "configs/finetune/sst2.yaml", "--model", str(out / "pretrain" / name / "final"),
             "--train-file", str(data / "train.tsv"), "--dev-file", str(data / "dev.tsv"),
             "--output", str(out / "finetune" / name / "sst2"), *R.FINETUNE["common"], *R.FINETUNE["sst2"]],
            out / "finetune" / name / "sst2" / "metrics.json", [f"pretrain/{name}"]))
    return todo


def seed_figures(metrics: Path) -> dict[str, list[float]] | None:
    """Every seed's best dev accuracy and its accuracy under the attack, in %, from a run's metrics.json."""
    if not metrics.is_file():
        return None
    f = json.loads(metrics.read_text())["figures"]
    return {"dev": [v * 100 for v in f["accuracy"]["per_seed"].values()],
            "attack": [v * 100 for v in f["attack_accuracy"]["per_seed"].values()]}


def fmt(values: list[float] | None) -> str:
    if not values:
        return "-"
    import statistics

    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f} ({' / '.join(f'{v:.1f}' for v in values)})"


def report(args) -> int:
    out = Path(args.out)
    print("### (a) SMART fine-tuning MiniLM\n")
    print("| task | rule | dev accuracy (%) | under attack (%) | mean delta norm | mean adv loss |")
    print("|---|---|---|---|---|---|")
    for task in ("sst2", "rte"):
        for rule in RULES:
            run = out / "minilm" / f"{task}-{rule}"
            figures = seed_figures(run / "metrics.json")
            logs = [json.loads(line) for f in sorted(run.glob("**/metrics.jsonl")) for line in f.read_text().splitlines()]
            delta = [r["delta_norm"] for r in logs if r.get("delta_norm") is not None]
            adv = [r["adv_loss"] for r in logs if r.get("adv_loss") is not None]
            mean = lambda v: f"{sum(v) / len(v):.3g}" if v else "-"  # noqa: E731
            print(f"| {task} | {rule} | {fmt(figures and figures['dev'])} | {fmt(figures and figures['attack'])} "
                  f"| {mean(delta)} | {mean(adv)} |")
    print("\n### (b) pretraining, then plain SST-2 fine-tuning\n")
    print("| run | validation MLM loss | masked-token accuracy | median step (s) std / adv | SST-2 dev (%) | under attack (%) |")
    print("|---|---|---|---|---|---|")
    for name in ["standard", *(f"alum-{r}" for r in PRETRAIN_RULES)]:
        run = out / "pretrain" / name
        summary = R.pretrain_summary(run) or {}
        times = R.phase_step_times(run) if (run / "metrics.jsonl").is_file() else {}
        figures = seed_figures(out / "finetune" / name / "sst2" / "metrics.json")
        steps = " / ".join(f"{times[p]:.3f}" for p in ("standard", "adversarial") if p in times)
        print(f"| {name} | {summary.get('val_loss', float('nan')):.3f} | {summary.get('val_accuracy', float('nan')):.3f} "
              f"| {steps} | {fmt(figures and figures['dev'])} | {fmt(figures and figures['attack'])} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--steps", type=int, default=2000, help="N: pretraining steps, ALUM for the second half (2000)")
    r.add_argument("--corpus", default=str(R.SHARED / "corpus"))
    r.add_argument("--glue", default=str(R.SHARED / "glue"))
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default=str(R.REPO / "runs" / "update-rules"))
    p = sub.add_parser("report")
    p.add_argument("--out", default=str(R.REPO / "runs" / "update-rules"))
    args = parser.parse_args(argv)
    return R.run_jobs(jobs(args), args) if args.command == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
