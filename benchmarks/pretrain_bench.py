"""Pretraining speed and memory, measured side by side in one run (ratios, not absolute promises).

    python benchmarks/pretrain_bench.py [--shapes tiny bert-base] [--steps 30] [--out benchmarks/results/pretrain.json]
    python benchmarks/pretrain_bench.py --shapes bert-base --precision bf16 --batch 256   # a GPU (run.sh)

Precision `auto` is bf16 on a CUDA device and fp32 on a CPU; `--batch` and `--seq` replace a shape's
(a CPU-sized batch of 8 leaves a GPU idle). The same model, batch and precision go to all three parts.

1. Standard-phase throughput: our step (DeepSpeed engine, LM head on masked positions only) against
   transformers.Trainer doing MLM the run_mlm way (collator, full-vocabulary head), same model, data,
   sequence length and batch. Tokens/s from the median step time after warm-up; both include collation.
2. ALUM step cost: one ALUM update (K=1) against one standard update of the same engine, interleaved so
   that drift in the machine's speed hits both alike. The floor by counting passes is 8/3 = 2.67. R-Drop's
   update (two full passes) in the same rotation: its floor is 2.
3. Peak memory of a standard and an ALUM step, each in a fresh subprocess (CPU: peak RSS growth; GPU:
   torch.cuda.max_memory_allocated).

4. Model FLOPs utilisation on a GPU: achieved model FLOP/s over the device's dense bf16 peak (PEAK_BF16,
   by device name, or --peak-tflops), for the standard step, the ALUM step and the Trainer's step.

With `--checkpointing` it measures gradient checkpointing instead (`gradient_checkpointing: true`), and
writes benchmarks/results/checkpointing.json unless --out says otherwise: the standard and ALUM steps with
and without it, interleaved on one engine (the model's checkpointing switched on and off between steps),
and the peak memory of each of the four, each in a fresh subprocess.

Data: blocks of uniformly random token ids over a 30,522-token vocabulary (the BERT vocabulary size); the
content of the tokens does not change the work a step does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

VOCAB = 30522
SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, seq=128, batch=16),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, seq=128, batch=8),
}


@dataclass(frozen=True)
class Setup:
    """What one measurement runs: a shape's model, its batch and sequence length, and the precision."""

    shape: str
    batch: int
    seq: int
    precision: str  # fp32, bf16 or fp16

    @property
    def model(self) -> dict:
        return {k: v for k, v in SHAPES[self.shape].items() if k not in ("seq", "batch")}

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    def argv(self) -> list[str]:
        """The flags that rebuild this setup in a subprocess."""
        return ["--shapes", self.shape, "--batch", str(self.batch), "--seq", str(self.seq), "--precision", self.precision]


def make_setup(shape: str, batch: int | None, seq: int | None, precision: str) -> Setup:
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "fp32"
    return Setup(shape, batch or SHAPES[shape]["batch"], seq or SHAPES[shape]["seq"], precision)


class Tokenizer:
    """The few attributes DataCollatorForLanguageModeling needs, for a random-id vocabulary."""

    mask_token, mask_token_id, pad_token_id, pad_token = "[MASK]", 103, 0, "[PAD]"
    padding_side = "right"

    def __len__(self):
        return VOCAB

    def convert_tokens_to_ids(self, token):
        return self.mask_token_id

    def get_special_tokens_mask(self, ids, already_has_special_tokens=True):
        return [0] * len(ids)

    def pad(self, features, return_tensors="pt", pad_to_multiple_of=None, **_):
        ids = torch.tensor([f["input_ids"] for f in features])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def make_model(setup: Setup, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, max_position_embeddings=max(512, setup.seq), **setup.model)
    # transformers picks PyTorch's scaled-dot-product attention for BERT by default; recorded in the results
    return BertForMaskedLM(config)


def make_rows(setup: Setup, count: int):
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(1000, VOCAB, (setup.seq,), generator=g).tolist()} for _ in range(count)]


def collator(seed: int = 0):
    from transformers import DataCollatorForLanguageModeling

    c = DataCollatorForLanguageModeling(Tokenizer(), mlm_probability=0.15, seed=seed)
    c.create_rng()
    return c


def ours_engine(setup: Setup, method_names: tuple[str, ...]):
    from alum.adversarial import Target, build_method
    from alum.training.deepspeed_config import EngineConfig
    from alum.training.engine import EngineTrainer, build_engine
    from alum.training.optim import OptimConfig
    from alum.pretrain.mlm import mlm_forward

    engine = build_engine(make_model(setup), OptimConfig(lr=1e-4, warmup=0),
                          EngineConfig(precision=setup.precision, micro_batch_size=setup.batch), 10**6)
    target = Target(engine.module, mlm_forward)
    methods = {name: build_method(name) for name in ("none", *method_names)}
    trainers = {name: EngineTrainer(engine, m, target) for name, m in methods.items()}
    return engine, trainers


def ours_batches(setup: Setup, device):
    from alum.pretrain.data import with_mlm_index

    c, rows, batch = collator(), make_rows(setup, max(256, setup.batch)), setup.batch
    i = 0
    while True:
        chunk = [rows[(i + k) % len(rows)] for k in range(batch)]
        i += batch
        yield {k: v.to(device) for k, v in with_mlm_index(c(chunk)).items()}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_ours(setup: Setup, steps: int, warmup: int) -> dict:
    engine, trainers = ours_engine(setup, ("rdrop", "alum"))
    data = ours_batches(setup, engine.device)
    times = {name: [] for name in trainers}
    for i in range(warmup + steps):
        for name in trainers:  # interleaved: all see the same machine
            sync()
            start = time.perf_counter()
            trainers[name].update([next(data)])
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    standard, alum = statistics.median(times["none"]), statistics.median(times["alum"])
    rdrop = statistics.median(times["rdrop"])
    return {"standard_step_s": standard, "alum_step_s": alum, "tokens_per_s": setup.tokens / standard,
            "alum_tokens_per_s": setup.tokens / alum, "alum_over_standard": alum / standard,
            "rdrop_step_s": rdrop, "rdrop_over_standard": rdrop / standard,
            "attn_implementation": engine.module.config._attn_implementation}


def time_trainer(setup: Setup, steps: int, warmup: int) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    stamps = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            sync()
            stamps.append(["begin", time.perf_counter()])

        def on_step_end(self, args, state, control, **kw):
            sync()
            stamps.append(["end", time.perf_counter()])

    args = TrainingArguments(
        output_dir="/tmp/alum-bench-trainer", per_device_train_batch_size=setup.batch, max_steps=warmup + steps,
        learning_rate=1e-4, warmup_steps=0, logging_strategy="no", save_strategy="no", report_to=[],
        dataloader_num_workers=0, disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        bf16=setup.precision == "bf16", fp16=setup.precision == "fp16", seed=0,
    )
    # a plain list of rows is a dataset to the Trainer (run_mlm hands it a `datasets` one; the rows are the same)
    trainer = Trainer(model=make_model(setup), args=args, train_dataset=make_rows(setup, max(256, setup.batch)),
                      data_collator=collator(), callbacks=[Clock()])
    trainer.train()
    # a step's time is from one step's end to the next one's end: it includes fetching and collating the batch
    ends = [t for kind, t in stamps if kind == "end"]
    durations = [b - a for a, b in zip(ends, ends[1:])][warmup - 1 :]
    step = statistics.median(durations)
    return {"step_s": step, "tokens_per_s": setup.tokens / step,
            "attn_implementation": trainer.model.config._attn_implementation}


def set_checkpointing(model, on: bool) -> None:
    from alum.training.recompute import enable_gradient_checkpointing

    if on:
        enable_gradient_checkpointing(model, "benchmark", "--checkpointing")
    else:
        (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()


def time_checkpointing(setup: Setup, steps: int, warmup: int) -> dict:
    """Median step time of the standard and the ALUM update, with and without gradient checkpointing, all four
    interleaved on one engine so that the machine's drift hits them alike."""
    engine, trainers = ours_engine(setup, ("alum",))
    data = ours_batches(setup, engine.device)
    times = {(name, on): [] for name in trainers for on in (False, True)}
    for i in range(warmup + steps):
        for on in (False, True):
            set_checkpointing(engine.module, on)
            for name in trainers:
                sync()
                start = time.perf_counter()
                trainers[name].update([next(data)])
                sync()
                if i >= warmup:
                    times[(name, on)].append(time.perf_counter() - start)
    median = {key: statistics.median(values) for key, values in times.items()}
    return {("standard" if name == "none" else name): {
        "plain_step_s": median[(name, False)], "checkpointed_step_s": median[(name, True)],
        "checkpointed_over_plain": median[(name, True)] / median[(name, False)]} for name in trainers}


def peak_memory(setup: Setup, method: str, steps: int, checkpointing: bool = False) -> float:
    """MiB: peak GPU allocation, or peak RSS growth of this process on CPU."""
    engine, trainers = ours_engine(setup, (method,))
    set_checkpointing(engine.module, checkpointing)
    data = ours_batches(setup, engine.device)
    trainers["none"].update([next(data)])  # optimizer state exists in both measurements
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(steps):
            trainers[method].update([next(data)])
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # CPU: sample the resident set every millisecond while the steps run; report the growth over the start
    base, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(steps):
        trainers[method].update([next(data)])
    done.set()
    sampler.join()
    return peak[0] - base


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def in_subprocess(*argv: str) -> str:
    """The last stdout line of this script run with `argv`, in a fresh process without launcher variables:
    with them, Trainer would wrap the model in DistributedDataParallel, which a one-process user never sees."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, by the name CUDA reports.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def model_flops_per_token(setup: Setup) -> float:
    """Training FLOPs per token the usual way (forward + backward = 3x forward): 6 per encoder weight plus
    attention's 12 * layers * seq * hidden. The LM head counts as if run on every token, so a head on
    masked positions only shows as higher utilisation, as any saved work does in an MFU figure."""
    s = setup.model
    h, layers, ffn, seq = s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"], setup.seq
    encoder = layers * (4 * h * h + 2 * h * ffn)
    head = h * h + h * VOCAB
    return 6 * (encoder + head) + 12 * layers * seq * h


def peak_flops(override_tflops: float | None) -> float | None:
    """The device's dense bf16 peak: the override, else the table entry whose key is in CUDA's device name."""
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def utilisation(setup: Setup, tokens_per_s: float, peak: float | None, work: float = 1.0) -> dict:
    """Achieved model TFLOP/s, and MFU where the peak is known. `work` scales the model FLOPs a token costs
    (8/3 for an ALUM step with K=1, by counting its passes: 3 forwards, an input-only and two full backwards)."""
    achieved = work * model_flops_per_token(setup) * tokens_per_s
    out = {"model_tflops_per_s": achieved / 1e12}
    if peak:
        out["mfu"] = achieved / peak
    return out


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", nargs="+", default=["tiny", "bert-base"])
    p.add_argument("--steps", type=int, default=None, help="measured steps (default: 80 tiny, 12 bert-base)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured steps first (default: 3 tiny, 2 others)")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default: the shape's)")
    p.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: the shape's, 128)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 on a CUDA device, fp32 on a CPU")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 peak in TFLOP/s for MFU (default: PEAK_BF16 by device name)")
    p.add_argument("--checkpointing", action="store_true",
                   help="measure gradient checkpointing (time and memory, with and without) instead")
    p.add_argument("--out", default=None, help="default: benchmarks/results/pretrain.json (checkpointing.json)")
    p.add_argument("--memory", metavar="METHOD", help=argparse.SUPPRESS)
    p.add_argument("--checkpointed", action="store_true", help=argparse.SUPPRESS)  # with --memory
    p.add_argument("--trainer", nargs=2, type=int, metavar=("STEPS", "WARMUP"), help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setups = [make_setup(shape, args.batch, args.seq, args.precision) for shape in args.shapes]
    if args.trainer:
        print(json.dumps(time_trainer(setups[0], *args.trainer)))
        return
    from alum.training.distributed import ensure_launch_env

    ensure_launch_env()
    if args.memory:
        print(peak_memory(setups[0], args.memory, steps=2, checkpointing=args.checkpointed))
        return
    if args.checkpointing:
        compare_checkpointing(setups, args)
        return

    peak = peak_flops(args.peak_tflops)
    results = {"machine": machine(), "peak_bf16_tflops": peak / 1e12 if peak else None, "shapes": {}}
    for setup in setups:
        shape = setup.shape
        steps = args.steps or (80 if shape == "tiny" else 12)
        warmup = max(1, args.warmup if args.warmup is not None else (3 if shape == "tiny" else 2))
        print(f"[{shape}] timing our loop (standard and ALUM, interleaved) ...", flush=True)
        ours = time_ours(setup, steps, warmup)
        print(f"[{shape}] timing transformers.Trainer ...", flush=True)
        hf = json.loads(in_subprocess("--trainer", str(steps), str(warmup), *setup.argv()))
        print(f"[{shape}] peak memory per phase ...", flush=True)
        mem = {m: float(in_subprocess("--memory", m, *setup.argv())) for m in ("none", "alum")}
        results["shapes"][shape] = {
            "steps": steps, "batch": setup.batch, "seq": setup.seq, "precision": setup.precision, "vocab": VOCAB,
            "ours": ours, "trainer": hf,
            "utilisation": utilisation(setup, ours["tokens_per_s"], peak),
            "alum_utilisation": utilisation(setup, ours["alum_tokens_per_s"], peak, work=8 / 3),
            "trainer_utilisation": utilisation(setup, hf["tokens_per_s"], peak),
            "speedup_vs_trainer": ours["tokens_per_s"] / hf["tokens_per_s"],
            "alum_over_standard": ours["alum_over_standard"], "rdrop_over_standard": ours["rdrop_over_standard"],
            "peak_memory_mib": {"standard": mem["none"], "alum": mem["alum"], "alum_over_standard": mem["alum"] / max(mem["none"], 1e-9)},
        }
        r = results["shapes"][shape]
        print(f"[{shape}] batch {setup.batch} x {setup.seq}, {setup.precision}: ours {ours['tokens_per_s']:.0f} tok/s, "
              f"Trainer {hf['tokens_per_s']:.0f} tok/s -> {r['speedup_vs_trainer']:.2f}x; ALUM step / standard step = "
              f"{r['alum_over_standard']:.2f}, R-Drop {r['rdrop_over_standard']:.2f}; peak memory standard {mem['none']:.0f} MiB, ALUM {mem['alum']:.0f} MiB; "
              f"{json.dumps(r['utilisation'])}", flush=True)
    write(results, args.out or "benchmarks/results/pretrain.json")


def compare_checkpointing(setups: list[Setup], args) -> None:
    results = {"machine": machine(), "shapes": {}}
    for setup in setups:
        shape = setup.shape
        steps = args.steps or (20 if shape == "tiny" else 6)
        warmup = max(1, args.warmup if args.warmup is not None else 2)
        print(f"[{shape}] timing standard and ALUM steps with and without gradient checkpointing ...", flush=True)
        timed = time_checkpointing(setup, steps, warmup)
        print(f"[{shape}] peak memory of each ...", flush=True)
        memory = {}
        for method in ("none", "alum"):
            plain = float(in_subprocess("--memory", method, *setup.argv()))
            checkpointed = float(in_subprocess("--memory", method, "--checkpointed", *setup.argv()))
            memory["standard" if method == "none" else method] = {
                "plain_mib": plain, "checkpointed_mib": checkpointed, "checkpointed_over_plain": checkpointed / max(plain, 1e-9)}
        results["shapes"][shape] = {"steps": steps, "batch": setup.batch, "seq": setup.seq,
                                    "precision": setup.precision, "time": timed, "peak_memory": memory}
        for name in timed:
            print(f"[{shape}] {name}: step {timed[name]['plain_step_s']:.3f} s -> {timed[name]['checkpointed_step_s']:.3f} s "
                  f"({timed[name]['checkpointed_over_plain']:.2f}x); peak memory {memory[name]['plain_mib']:.0f} -> "
                  f"{memory[name]['checkpointed_mib']:.0f} MiB ({memory[name]['checkpointed_over_plain']:.2f}x)", flush=True)
    write(results, args.out or "benchmarks/results/checkpointing.json")


def write(results: dict, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
