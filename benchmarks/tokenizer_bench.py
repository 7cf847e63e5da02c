"""Tokenizer stage benchmark, side by side in one run (ratios, not absolute times):

1. speed: `alum tokenizer train` against the same training done by calling `tokenizers` directly (same
   pipeline, same trainer settings, same files, `Tokenizer.train(files)`), each in a fresh process, repeated
   and interleaved; medians and their ratio, end to end (process wall time) and for the training phase;
2. memory: peak RSS of `alum tokenizer train` (and of the direct call) on ~10 MB and on ~200 MB (the 10 MB
   corpus repeated), each in a fresh process;
3. sentencepiece's BPE trainer on the same 10 MB, same vocabulary size.

    python benchmarks/tokenizer_bench.py            # ~3-6 minutes on 2 CPU cores
    python benchmarks/tokenizer_bench.py --quick    # 2 MB / 10 MB, one repeat: a smoke test

Reads the real text in ../shared/data/corpus (override with --data); writes benchmarks/results/tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # the roberta style, as `alum tokenizer train` uses
MB = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "corpus")
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--small-mb", type=int, default=10)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each on the small corpus")
    parser.add_argument("--big-repeats", type=int, default=2, help="runs of each on the big corpus")
    parser.add_argument("--quick", action="store_true", help="2 MB and 10 MB, one repeat")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tokenizer.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # internal: one measured run
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child[0]](*args.child[1:])
    if args.quick:
        args.small_mb, args.big_mb, args.repeats, args.big_repeats = 2, 10, 1, 1
    with tempfile.TemporaryDirectory(prefix="tokenizer-bench-") as scratch:
        results = run_all(args, Path(scratch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(summary(results))
    print(f"\nwrote {args.out}")


# ---------------------------------------------------------------------------------------------- corpora


def build_corpora(data: Path, scratch: Path, small_mb: int, big_mb: int) -> tuple[Path, Path]:
    """A ~small_mb directory of real text (the shared corpus, cycled, cut at a line end) and a ~big_mb
    directory holding it repeated (hard links where possible: same bytes, no extra disk)."""
    sources = sorted(p for p in data.rglob("*.txt") if p.is_file())
    if not sources:
        sys.exit(f"no .txt files under {data} (give --data)")
    small_dir, big_dir = scratch / "small", scratch / "big"
    small_dir.mkdir()
    big_dir.mkdir()
    target, written = small_mb * MB, 0
    small = small_dir / "corpus.txt"
    with open(small, "wb") as out:
        while written < target:
            for source in sources:
                for line in source.read_bytes().splitlines(keepends=True):
                    out.write(line)
                    written += len(line)
                    if written >= target:
                        break
                if written >= target:
                    break
    for i in range(max(1, round(big_mb / small_mb))):
        copy = big_dir / f"corpus-{i:03d}.txt"
        try:
            os.link(small, copy)
        except OSError:
            shutil.copyfile(small, copy)
    return small_dir, big_dir


# ---------------------------------------------------------------------------------------------- runs


def measured(cmd: list[str]) -> dict:
    """Run `cmd` in a fresh process: wall seconds, its own peak RSS (wait4 reports it per child), stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child ourselves: Popen.wait would hide its rusage
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-2000:]}")
        rss_kb = usage.ru_maxrss  # kilobytes on Linux
        return {"wall_s": round(wall, 3), "peak_rss_mb": round(rss_kb / 1024, 1), "stdout": out.read()}


def alum_run(corpus: Path, vocab: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "alum.cli", "tokenizer", "train", "--files", str(corpus),
           "--vocab-size", str(vocab), "--output", str(out), "--overwrite", "--no-progress"]
    result = measured(cmd)
    stats = json.loads((out / "stats.json").read_text())
    result.update(train_s=stats["training_seconds"], vocab=stats["vocab_size"], lines=stats["corpus"]["lines"],
                  disk_bytes=stats["corpus"]["disk_bytes"])
    del result["stdout"]
    return result


def direct_run(corpus: Path, vocab: int, out: Path) -> dict:
    result = measured([sys.executable, __file__, "--child", "direct", str(corpus), str(vocab), str(out)])
    result.update(json.loads(result.pop("stdout")))
    return result


def spm_run(corpus: Path, vocab: int, out: Path) -> dict:
    result = measured([sys.executable, __file__, "--child", "sentencepiece", str(corpus), str(vocab), str(out)])
    result.update(json.loads(result.pop("stdout")))
    return result


def child_direct(corpus: str, vocab: str, out: str) -> None:
    """What a user would write with `tokenizers` alone for the same tokenizer as the default preset."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    files = sorted(str(p) for p in Path(corpus).iterdir())
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab), min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    started = time.perf_counter()
    tokenizer.train(files, trainer)
    train_s = time.perf_counter() - started
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    Path(out).mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(Path(out) / "tokenizer.json"))
    print(json.dumps({"train_s": round(train_s, 3), "vocab": tokenizer.get_vocab_size()}))


def child_sentencepiece(corpus: str, vocab: str, out: str) -> None:
    import sentencepiece as spm

    files = sorted(str(p) for p in Path(corpus).iterdir())
    Path(out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    spm.SentencePieceTrainer.train(
        input=",".join(files), model_prefix=str(Path(out) / "spm"), vocab_size=int(vocab), model_type="bpe",
        character_coverage=1.0, byte_fallback=True,  # like byte-level BPE: any text encodable
        normalization_rule_name="identity",  # as the default preset: no normalisation
        max_sentence_length=1 << 16, input_sentence_size=0, num_threads=os.cpu_count() or 1, minloglevel=2,
    )
    print(json.dumps({"train_s": round(time.perf_counter() - started, 3)}))


CHILDREN = {"direct": child_direct, "sentencepiece": child_sentencepiece}


# ---------------------------------------------------------------------------------------------- the run


def run_all(args, scratch: Path) -> dict:
    small, big = build_corpora(args.data, scratch, args.small_mb, args.big_mb)
    load_before = os.getloadavg()
    started = time.perf_counter()
    # Warm the page cache and the imports once, so the first measured run is not the odd one out.
    alum_run(small, args.vocab, scratch / "out" / "warm")
    small_figures = compare("small", small, args.vocab, args.repeats, scratch / "out")
    big_figures = compare("big", big, args.vocab, args.big_repeats, scratch / "out")
    spm = spm_run(small, args.vocab, scratch / "out" / "spm")
    print(f"sentencepiece: {spm}", flush=True)
    direct = small_figures["median"]["direct"]
    return {
        "machine": machine(load_before),
        "settings": {
            "vocab_size": args.vocab, "min_frequency": 2, "algorithm": "byte-level BPE",
            "repeats_small": args.repeats, "repeats_big": args.big_repeats,
            "small_bytes": sum(p.stat().st_size for p in small.iterdir()),
            "big_bytes": sum(p.stat().st_size for p in big.iterdir()),
            "data": str(args.data),
        },
        "small": small_figures,
        "big": big_figures,
        "memory_growth": round(big_figures["peak_rss_mb"]["alum"] / small_figures["peak_rss_mb"]["alum"], 3),
        "sentencepiece_small": spm | {
            "ratio_wall_vs_direct": round(spm["wall_s"] / direct["wall_s"], 3),
            "ratio_train_vs_direct": round(spm["train_s"] / direct["train_s"], 3),
        },
        "benchmark_seconds": round(time.perf_counter() - started, 1),
    }


def compare(name: str, corpus: Path, vocab: int, repeats: int, outs: Path) -> dict:
    """alum against direct on `corpus`: interleaved, alternating who goes first, so drift hits both alike."""
    runs = {"direct": [], "alum": []}
    for repeat in range(repeats):
        for who in (["direct", "alum"] if repeat % 2 == 0 else ["alum", "direct"]):
            run = direct_run if who == "direct" else alum_run
            runs[who].append(run(corpus, vocab, outs / f"{name}-{who}-{repeat}"))
            print(f"{name} {who} #{repeat}: {runs[who][-1]}", flush=True)
    med = {who: {key: statistics.median(r[key] for r in rs) for key in ("wall_s", "train_s")}
           for who, rs in runs.items()}
    return {
        "runs": runs,
        "median": med,
        "peak_rss_mb": {who: max(r["peak_rss_mb"] for r in rs) for who, rs in runs.items()},
        "ratio_wall": round(med["alum"]["wall_s"] / med["direct"]["wall_s"], 3),
        "ratio_train": round(med["alum"]["train_s"] / med["direct"]["train_s"], 3),
    }


def machine(load_before) -> dict:
    import psutil
    import sentencepiece
    import tokenizers
    import transformers

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(), "python": platform.python_version(), "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__, "sentencepiece": sentencepiece.__version__,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def summary(r: dict) -> str:
    spm, settings = r["sentencepiece_small"], r["settings"]
    rows = ["| run | corpus | wall s (median) | training s (median) | peak RSS MB |", "|---|---|---|---|---|"]
    for size in ("small", "big"):
        mb, figures = settings[f"{size}_bytes"] / MB, r[size]
        for who, label in (("direct", "tokenizers direct"), ("alum", "alum tokenizer train")):
            med = figures["median"][who]
            rows.append(f"| {label} | {mb:.0f} MB | {med['wall_s']:.2f} | {med['train_s']:.2f} | "
                        f"{figures['peak_rss_mb'][who]:.0f} |")
    small_mb, big_mb = settings["small_bytes"] / MB, settings["big_bytes"] / MB
    rows.append(f"| sentencepiece BPE | {small_mb:.0f} MB | {spm['wall_s']:.2f} | {spm['train_s']:.2f} | "
                f"{spm['peak_rss_mb']:.0f} |")
    rows.append("")
    for size, mb in (("small", small_mb), ("big", big_mb)):
        rows.append(f"alum / direct, {mb:.0f} MB: wall {r[size]['ratio_wall']:.3f}x, training "
                    f"{r[size]['ratio_train']:.3f}x (medians of {settings[f'repeats_{size}']})")
    rows.append(f"alum peak RSS {big_mb:.0f} MB / {small_mb:.0f} MB: {r['memory_growth']:.3f}x")
    rows.append(f"sentencepiece / tokenizers direct, {small_mb:.0f} MB: wall {spm['ratio_wall_vs_direct']:.3f}x, "
                f"training {spm['ratio_train_vs_direct']:.3f}x")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
