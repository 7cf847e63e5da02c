"""What the adversarial term buys: SMART and ALUM taken apart into their dropout part and their perturbation,
on the real MiniLM and in the small pretraining reproduction (docs/decomposition.md).

    python experiments/decompose.py sweep             # which delta size survives bf16 and fp16 (MiniLM, SST-2)
    python experiments/decompose.py run [--seeds 3]   # the fine-tuning arms and the pretraining forks
    python experiments/decompose.py timing sst2       # each arm's time per update against none, side by side
    python experiments/decompose.py report [--save]   # the tables of docs/decomposition.md, each arm also paired
                                                      # seed by seed with its baseline (--save: into RECORD)
    python experiments/decompose.py first-release     # SMART's first release (mt-dnn 5af3326) against 0d6201e

The fine-tuning arms, at equal alpha (1) and mu (1), every option written out (not left to the defaults):

  none             plain fine-tuning
  rdrop            R-Drop: two dropout passes, their symmetric KL (Liang et al. 2021)
  smart-dropout    SMART with step_size 0: delta is exactly 0, so its smoothness term compares two dropout
                   draws (the perturbed pass is cut below the embeddings, as released); the teacher is kept
  smart-teacher    SMART with alpha 0: the momentum teacher's Bregman term alone (no perturbed pass is run)
  smart-released   SMART as the code released with the paper: fresh masks, the `gradient` rule, sigma 1e-5,
                   eta 1e-3
  smart-shared     SMART with the clean pass's dropout masks replayed (the passes differ by delta alone) and a
                   delta that survives bf16/fp16: the `project` rule at the size `sweep` picks

Every `alum finetune` run is one (task, arm, seed) in its own directory, started seed by seed so that a cut
experiment leaves every arm with the same seeds; `--seeds 5` adds seeds 4 and 5 to a finished run of 3.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reproduce_alum as R  # noqa: E402
from finetune_minilm import time_updates  # noqa: E402

REPO = R.REPO
OUT = REPO / "runs" / "decompose"
RECORD = Path(__file__).resolve().parent / "results" / "decompose.json"  # every fine-tuning run's figures

# The perturbation size of the shared-mask arm: the smallest of the sweep at which delta's direction in bf16
# and fp16 agrees with float64 (cosine >= 0.8) in eval mode, with shared and with fresh masks (docs).
SURVIVING = {"constraint": "project", "sigma": 1e-2, "step_size": 3e-2, "eps": 3e-2}
RELEASED = {"constraint": "gradient", "sigma": 1e-5, "step_size": 1e-3}


def smart(**options) -> tuple[str, list[str]]:
    options = {"alpha": 1.0, "mu": 1.0, "detach_embeddings": "true", "share_dropout": "false", **options}
    return "smart", [f"adversarial.options.smart.{k}={v}" for k, v in options.items()]


ARMS = {
    "none": ("none", []),
    "rdrop": ("rdrop", ["adversarial.options.rdrop.alpha=1.0"]),
    "smart-dropout": smart(**{**RELEASED, "step_size": 0.0}),
    "smart-teacher": smart(**{**RELEASED, "step_size": 0.0}, alpha=0.0),  # the Bregman term alone
    "smart-released": smart(**RELEASED),
    "smart-shared": smart(**SURVIVING, share_dropout="true"),
}

# MiniLM's recipe (docs/finetune-evidence.md): lr 1e-4, warm-up 10 %, attack 5 PGD steps at 0.01.
COMMON = ["optim.lr=1e-4", "optim.warmup=0.1", "attack.eps=0.01", "attack.steps=5", "train.save_seed_models=true"]
TASKS = {
    "sst2": ("SST-2", ["data.train_subset=2000", "data.dev_subset=500", "data.max_seq_len=64", "train.epochs=1",
                       "train.eval_every=21", "engine.micro_batch_size=32"]),
    "mrpc": ("MRPC", ["data.max_seq_len=128", "train.epochs=1", "train.eval_every=29", "engine.micro_batch_size=32"]),
    "cola": ("CoLA", ["data.train_subset=4000", "data.max_seq_len=64", "train.epochs=2", "train.eval_every=42",
                      "engine.micro_batch_size=32"]),
}

# The pretraining forks (the small reproduction of docs/reproduction.md): one masked-LM run to the switch, then
# each continuation for as many steps; ALUM at the paper's pretraining alpha 10, R-Drop at the same alpha.
PRETRAIN_ARMS = {
    "standard": ["adversarial.method=none"],
    "rdrop": ["adversarial.method=rdrop", "adversarial.options.rdrop.alpha=10.0"],
    "alum-released": ["adversarial.method=alum", "adversarial.options.alum.alpha=10.0",
                      "adversarial.options.alum.share_dropout=false",
                      *(f"adversarial.options.alum.{k}={v}" for k, v in RELEASED.items())],
    "alum-shared": ["adversarial.method=alum", "adversarial.options.alum.alpha=10.0",
                    "adversarial.options.alum.share_dropout=true",
                    *(f"adversarial.options.alum.{k}={v}" for k, v in SURVIVING.items())],
}


def finetune_argv(task: str, arm: str, seed: int, glue: Path, model: str, out: Path) -> list[str]:
    folder, overrides = TASKS[task]
    method, options = ARMS[arm]
    return ["finetune", "--config", f"configs/finetune/{task}.yaml", "--model", model,
            "--train-file", str(glue / folder / "train.tsv"), "--dev-file", str(glue / folder / "dev.tsv"),
            "--output", str(out), "--method", method, f"train.seed={seed}", "train.seeds=1",
            *COMMON, *overrides, *options]


def jobs(args) -> list[R.Job]:
    out, glue, n = Path(args.out), Path(args.glue), args.steps
    todo: list[R.Job] = []
    minilm = R.minilm_dir()
    for seed in range(args.first_seed, args.seeds + 1):  # seed by seed: a cut run leaves every arm with the same seeds
        for task in args.tasks:
            for arm in args.arms:
                run = out / "finetune" / task / arm / f"seed-{seed}"
                todo.append(R.Job(f"finetune/{task}/{arm}/seed-{seed}",
                                  finetune_argv(task, arm, seed, glue, minilm, run), run / "metrics.json"))
    if not args.pretrain:
        return todo

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
        def copy_prefix() -> None:
            if not (out / "pretrain" / name).exists():
                shutil.copytree(prefix, out / "pretrain" / name, ignore=shutil.ignore_patterns("final"))
        return copy_prefix

    for name, extra in PRETRAIN_ARMS.items():
        todo.insert(2, R.Job(f"pretrain/{name}", pretrain(name, extra), out / "pretrain" / name / "final" / "config.json",
                             ["pretrain/prefix"], prepare=fork(name)))
        data = glue / "SST-2"
        todo.insert(3, R.Job(
            f"pretrain-finetune/{name}/sst2",
            ["finetune", "--config", "configs/finetune/sst2.yaml", "--model", str(out / "pretrain" / name / "final"),
             "--train-file", str(data / "train.tsv"), "--dev-file", str(data / "dev.tsv"),
             "--output", str(out / "pretrain-finetune" / name / "sst2"), *R.FINETUNE["common"], *R.FINETUNE["sst2"]],
            out / "pretrain-finetune" / name / "sst2" / "metrics.json", [f"pretrain/{name}"]))
    return todo


# ---- the size sweep: does delta survive the precision it runs in? ----

PRECISIONS = ("fp32", "bf16-autocast", "bf16-weights", "fp16-autocast", "fp16-weights")
MODES = ("eval", "shared", "fresh")  # no dropout; dropout masks shared between the passes; fresh masks
# The released rule at the papers' sizes and at the chosen ones (where its 1e-6 guard, not eta, sets delta's size
# once the masks are shared), and the papers' Algorithm 1 (`project`) at growing sizes, eps = eta.
SIZES = [("gradient", 1e-5, 1e-3), ("gradient", 1e-2, 3e-2)] + [
    ("project", s, e) for s, e in [(1e-5, 1e-3), (1e-3, 3e-3), (3e-3, 1e-2), (1e-2, 3e-2), (3e-2, 1e-1)]]
FP16_LOSS_SCALE = 2.0 ** 16  # DeepSpeed's and torch.amp's first dynamic loss scale: what an fp16 run lends


def sweep(args) -> int:
    """ALUM's delta on one SST-2 dev batch through the real MiniLM, in each precision and dropout mode, against
    the same step in float64 (same start, same masks): the cosine of the two deltas, and what of delta the
    model received (the effective delta's cosine to delta and the share of tokens it left unchanged)."""
    import torch

    from alum.adversarial import Target, build_method
    from alum.finetune.model import make_forward
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    model_dir = R.minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lines = (Path(args.glue) / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:17]
    encoded = tokenizer([line.split("\t")[0] for line in lines], padding=True, truncation=True, max_length=64,
                        return_tensors="pt")
    batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    mask = batch["attention_mask"].unsqueeze(-1).double()
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    models = {"fp32": base, "float64": copy.deepcopy(base).double(), "bf16-weights": copy.deepcopy(base).bfloat16(),
              "fp16-weights": copy.deepcopy(base).half()}

    class NoUpdate:
        def __init__(self, scale):
            self.scale = scale

        def backward(self, loss):
            del loss

        def optimizer_step(self):
            pass

        def loss_scale(self):
            return self.scale

    def step(precision: str, options: dict, mode: str):
        model = models.get(precision, base)
        model.train(mode != "eval")
        target = Target(model, make_forward(model, regression=False))
        method = build_method("alum", {**options, "share_dropout": mode == "shared"})
        method.setup(target, total_updates=1)
        autocast = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(precision)
        torch.manual_seed(3)
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            report = method.step(target, batch, NoUpdate(FP16_LOSS_SCALE if "fp16" in precision else 1.0))
        return method.last_delta.double() * mask, report

    rows = []
    out = Path(args.out) / "sweep.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for (rule, sigma, eta), mode in itertools.product(SIZES, MODES):
            options = {"constraint": rule, "sigma": sigma, "step_size": eta, "eps": eta}
            reference, _ = step("float64", options, mode)
            for precision in PRECISIONS:
                delta, report = step(precision, options, mode)
                cosine = float((delta * reference).sum() / (delta.norm() * reference.norm()).clamp_min(1e-300))
                row = {"rule": rule, "sigma": sigma, "eta": eta, "mode": mode, "precision": precision,
                       "cosine_to_float64": cosine, "delta_norm": report.delta_norm,
                       "delta_effective": report.delta_effective, "delta_cosine": report.delta_cosine,
                       "delta_lost": report.delta_lost, "float64_delta_norm": float(
                           (reference.pow(2).sum(-1).sqrt() * mask.squeeze(-1)).sum() / mask.sum())}
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(sweep_line(row), flush=True)
    return 0


def sweep_line(r: dict) -> str:
    return (f"| {r['rule']} | {r['sigma']:g} | {r['eta']:g} | {r['mode']} | {r['precision']} | "
            f"{r['cosine_to_float64']:.3f} | {r['delta_cosine']:.3f} | {r['delta_lost']:.2f} | "
            f"{r['delta_norm']:.2e} | {r['float64_delta_norm']:.2e} |")


# ---- SMART's first release: how far its rule is from the one released a day later ----

def first_release(args) -> int:
    """mt-dnn 5af3326 perturbed by E + eta * (noise + g_hat), 0d6201e by E + eta * g_hat (g_hat = g / (||g||_inf
    + guard) per token, g the gradient of KL(clean || adv) at E + noise). How much the kept eta * noise moves
    delta, on MiniLM and SST-2 dev batches, at 5af3326's command-line sizes (sigma 1e-3, guard 1e-5) and at
    ALUM's (1e-5, 1e-6), with dropout (train mode) and without."""
    import torch
    import torch.nn.functional as F

    from alum.adversarial import Target
    from alum.finetune.model import make_forward
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    model_dir = R.minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lines = (Path(args.glue) / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:33]
    encoded = tokenizer([line.split("\t")[0] for line in lines], padding=True, truncation=True, max_length=64,
                        return_tensors="pt")
    batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    forward = make_forward(model, regression=False)
    target = Target(model, forward)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    dim = target.perturbation.block_dim
    for train in (True, False):
        model.train(train)
        for sigma, guard in ((1e-3, 1e-5), (1e-5, 1e-6)):
            moved, cosines = [], []
            for seed in range(4):
                torch.manual_seed(seed)
                with torch.no_grad():
                    clean = forward(model, batch).logits
                noise = (torch.randn(*batch["input_ids"].shape, dim) * sigma * mask).requires_grad_()
                with target.perturbation.applied(noise, "embeddings", detach=True):
                    adv = forward(model, batch).logits
                kl = F.kl_div(F.log_softmax(adv.float(), -1), F.softmax(clean.float(), -1), reduction="batchmean")
                (g,) = torch.autograd.grad(kl, noise)
                g_hat = g / (g.abs().amax(-1, keepdim=True) + guard)
                later, first = 1e-3 * g_hat * mask, 1e-3 * (noise.detach() + g_hat) * mask
                moved.append(float((first - later).norm() / later.norm()))
                cosines.append(float((first * later).sum() / (first.norm() * later.norm())))
            print(f"{'train' if train else 'eval '} sigma {sigma:g}, guard {guard:g}: 5af3326's delta differs from "
                  f"0d6201e's by {min(moved):.3g}-{max(moved):.3g} of its norm, cosine {min(cosines):.3f}-"
                  f"{max(cosines):.3f} (4 batches of 32)")
    return 0


# ---- time per update, side by side ----

def timing(args) -> int:
    """Every arm on the same batches, taking turns (finetune_minilm.time_updates); the median time per update and
    its ratio to `none`."""
    import torch

    from alum.finetune.config import load_finetune_config
    from alum.finetune.data import Collator
    from alum.finetune.prepare import prepare
    from alum.finetune.train import batches_forever, build_run
    from alum.training.distributed import ensure_launch_env

    torch.set_num_threads(args.threads)
    ensure_launch_env()
    glue = Path(args.glue)
    runs, batches = {}, None
    for arm in ARMS:
        argv = finetune_argv(args.task, arm, 1, glue, R.minilm_dir(), Path(args.out) / "timing-scratch")
        flags = dict(zip(argv[1::2], argv[2::2]))
        overrides = [a for a in argv if "=" in a and not a.startswith("--")]
        overrides = [o for o in overrides if not o.startswith(("data.train_subset", "data.dev_subset"))]
        cfg = load_finetune_config(str(REPO / flags["--config"]),
                                   [f"model={flags['--model']}", f"data.train_file={flags['--train-file']}",
                                    f"data.dev_file={flags['--dev-file']}", *overrides,
                                    f"data.train_subset={32 * args.updates}", "data.dev_subset=8"])
        prep = prepare(cfg)
        if batches is None:
            stream = batches_forever(prep.train, cfg.engine.micro_batch_size, 0, Collator(prep.tokenizer, False))
            batches = [next(stream) for _ in range(args.updates)]
        runs[arm] = build_run(prep, flags["--method"], seed=1)
    result = time_updates(runs, batches, args.rounds)
    path = Path(args.out) / "timing" / f"{args.task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    for arm, r in result.items():
        print(f"{arm:15s} {r['median_s']:.3f} s/update  {r['vs_none']:.2f}x none  ({r['n']} updates)")
    return 0


# ---- the tables ----

def run_results(out: Path) -> dict[str, dict[str, dict[str, dict]]]:
    """task -> arm -> seed -> one finished run's best dev figure clean and under attack (%), and the means of its
    training log's adversarial figures."""
    found: dict[str, dict[str, dict[str, dict]]] = {}
    for path in sorted(out.glob("finetune/*/*/seed-*/metrics.json")):
        run, arm, task = path.parent, path.parent.parent.name, path.parent.parent.parent.name
        summary = json.loads(path.read_text())
        metric, f = summary["metric"], summary["figures"]
        log = {}
        rows = R.read_jsonl(run / run.name / "metrics.jsonl")
        for key in ("adv_loss", "delta_norm", "delta_effective", "delta_cosine"):
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                log[key] = statistics.fmean(values)
        found.setdefault(task, {}).setdefault(arm, {})[run.name.split("-")[1]] = {
            "metric": metric, "dev": f[metric]["mean"] * 100, "attack": f[f"attack_{metric}"]["mean"] * 100,
            "log": log}
    return found


def results(args) -> dict[str, dict[str, dict[str, dict]]]:
    """The committed record (RECORD) with the runs found under --out laid over it; `--save` writes the union back.
    Run folders are large and outlive no machine; the record is what a later session reports from."""
    record = json.loads(Path(args.record).read_text()) if Path(args.record).is_file() else {}
    for task, arms in run_results(Path(args.out)).items():
        for arm, seeds in arms.items():
            record.setdefault(task, {}).setdefault(arm, {}).update(seeds)
    if args.save:
        Path(args.record).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


LOG_COLUMNS = ("adv_loss", "delta_norm", "delta_effective")  # the training log's means a table shows


def spread(values: list[float], sign: str = "") -> str:
    """Mean ± sd, then every value in order; sign "+" writes the values and the mean signed (differences)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:{sign}.1f} ({values[0]:{sign}.1f})"
    every = " / ".join(f"{v:{sign}.1f}" for v in values)
    return f"{statistics.fmean(values):{sign}.1f} ± {statistics.stdev(values):.1f} ({every})"


# Paired comparisons: a seed fixes the classifier head's initialisation, the data order and the dropout stream's
# start for every arm, so the per-seed difference removes what the seed does to all arms alike.
PAIRS = [(arm, "none") for arm in ARMS if arm != "none"] + [
    ("smart-released", "smart-dropout"), ("smart-shared", "smart-dropout"),  # what delta adds to delta 0
    ("smart-shared", "smart-released")]  # what the default (shared masks, a delta that survives) changes


def updown(differences: list[float]) -> tuple[int, int, int]:
    """Seeds where the arm is above, level with, below its baseline (level: the same figure to float rounding)."""
    above = sum(d > 1e-6 for d in differences)
    below = sum(d < -1e-6 for d in differences)
    return above, len(differences) - above - below, below


def sign_test(above: int, below: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven if above and below were equally likely
    (level seeds left out)."""
    n = above + below
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(above, below) + 1)) / 2 ** n) if n else 1.0


def paired(found: dict, seeds: list[str]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Print the per-seed differences of PAIRS on one task; return them, for the count over tasks."""
    print("\n| arm − baseline | clean, per-seed difference | above/level/below | under attack, per-seed difference "
          "| above/level/below |")
    print("|---|---|---|---|---|")
    differences = {}
    for arm, base in PAIRS:
        if arm not in found or base not in found:
            continue
        d = {key: [found[arm][s][key] - found[base][s][key] for s in seeds] for key in ("dev", "attack")}
        differences[arm, base] = d
        cells = [cell for key in ("dev", "attack")
                 for cell in (spread(d[key], "+"), "/".join(map(str, updown(d[key]))))]
        print(f"| {arm} − {base} | " + " | ".join(cells) + " |")
    return differences


def over_tasks(by_task: dict[str, dict]) -> None:
    """The paired differences' signs counted over every task and seed: the metrics differ, their signs do not."""
    print(f"\n### paired, over {', '.join(by_task)} (seeds above/level/below, two-sided sign test)\n")
    print("| arm − baseline | clean | p | under attack | p |")
    print("|---|---|---|---|---|")
    for pair in PAIRS:
        cells = []
        for key in ("dev", "attack"):
            above, level, below = updown([v for d in by_task.values() if pair in d for v in d[pair][key]])
            cells += [f"{above}/{level}/{below}", f"{sign_test(above, below):.2g}"]
        print(f"| {pair[0]} − {pair[1]} | " + " | ".join(cells) + " |")


def report(args) -> int:
    out, record = Path(args.out), results(args)
    by_task = {}
    for task in TASKS:
        found = {arm: record[task][arm] for arm in ARMS if record.get(task, {}).get(arm)}
        if not found:
            continue
        timed = out / "timing" / f"{task}.json"
        times = json.loads(timed.read_text()) if timed.is_file() else {}
        metric = next(iter(next(iter(found.values())).values()))["metric"]
        print(f"\n### {task} (dev {metric}, %)\n")
        print(f"| arm | seeds | dev {metric} | under attack | adv loss | delta norm | effective delta | time vs none |")
        print("|---|---|---|---|---|---|---|---|")
        # the arms are compared on the seeds all of them have finished; a seed some arms lack is listed below
        seeds = sorted(set.intersection(*(set(by_seed) for by_seed in found.values())), key=int)
        for arm, by_seed in found.items():
            runs = [by_seed[s] for s in seeds]
            # a run recorded without its log (its folder was lost before the record existed) has no log means
            logged = [s for s, r in zip(seeds, runs) if r["log"]]
            log = {k: statistics.fmean(v) for k in LOG_COLUMNS if (v := [r["log"][k] for r in runs if k in r["log"]])}
            time_vs = f"{times[arm]['vs_none']:.2f}x" if arm in times else "-"
            figures = " | ".join(f"{log[k]:.3g}" if k in log else "-" for k in LOG_COLUMNS)
            listed = ",".join(seeds) + (f" (log: {','.join(logged)})" if log and logged != seeds else "")
            print(f"| {arm} | {listed} | {spread([r['dev'] for r in runs])} | "
                  f"{spread([r['attack'] for r in runs])} | {figures} | {time_vs} |")
        by_task[task] = paired(found, seeds)
        extra = {arm: sorted(set(by_seed) - set(seeds), key=int) for arm, by_seed in found.items()}
        if any(extra.values()):
            print("\nfinished beyond the common seeds (not in the table): "
                  + "; ".join(f"{arm} seed {', '.join(s)}" for arm, s in extra.items() if s))
    if len(by_task) > 1:
        over_tasks(by_task)
    pretrain = {name: R.pretrain_summary(out / "pretrain" / name) for name in PRETRAIN_ARMS}
    if any(pretrain.values()):
        print("\n### pretraining forks, then plain SST-2 fine-tuning\n")
        print("| continuation | validation MLM loss | masked-token accuracy | SST-2 dev (%) | under attack (%) |")
        print("|---|---|---|---|---|")
        for name, summary in pretrain.items():
            if not summary:
                continue
            path = out / "pretrain-finetune" / name / "sst2" / "metrics.json"
            dev = attack = []
            if path.is_file():
                f = json.loads(path.read_text())["figures"]
                dev = [v * 100 for v in f["accuracy"]["per_seed"].values()]
                attack = [v * 100 for v in f["attack_accuracy"]["per_seed"].values()]
            print(f"| {name} | {summary['val_loss']:.3f} | {summary['val_accuracy']:.3f} | {spread(dev)} | "
                  f"{spread(attack)} |")
    sweep_path = out / "sweep.jsonl"
    if sweep_path.is_file():
        print("\n### the size sweep\n")
        print("| rule | sigma | eta = eps | masks | precision | cosine to float64 | effective cosine | tokens unchanged "
              "| delta norm | float64 delta norm |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row in R.read_jsonl(sweep_path):
            print(sweep_line(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    r.add_argument("--first-seed", type=int, default=1, help="run seeds first-seed..seeds (their own runs' order)")
    r.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="fine-tuning arms to run")
    r.add_argument("--no-pretrain", dest="pretrain", action="store_false", help="fine-tuning arms only")
    r.add_argument("--steps", type=int, default=2000, help="N: pretraining steps, the forks for the second half")
    r.add_argument("--corpus", default=str(R.SHARED / "corpus"))
    r.add_argument("--jobs", type=int, default=2)
    r.set_defaults(go=lambda a: R.run_jobs(jobs(a), a))
    s = sub.add_parser("sweep")
    s.set_defaults(go=sweep)
    t = sub.add_parser("timing")
    t.add_argument("task", choices=list(TASKS))
    t.add_argument("--updates", type=int, default=4, help="updates per arm per round")
    t.add_argument("--rounds", type=int, default=3)
    t.set_defaults(go=timing)
    f = sub.add_parser("first-release")
    f.set_defaults(go=first_release)
    p = sub.add_parser("report")
    p.add_argument("--record", default=str(RECORD), help="the committed per-run figures (JSON)")
    p.add_argument("--save", action="store_true", help="write the runs found under --out into --record")
    p.set_defaults(go=report)
    for each in (r, s, t, f, p):
        each.add_argument("--out", default=str(OUT))
        each.add_argument("--glue", default=str(R.SHARED / "glue"))
        each.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    return args.go(args)


if __name__ == "__main__":
    sys.exit(main())
