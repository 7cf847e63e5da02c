"""Corpus preparation and data resume, side by side in one run (ratios, not absolute times):

1. throughput: `alum prepare` with 1 and 2 processes against a plain `tokenizers` encode_batch over the same
   files in one process on one core (the floor: reading lines and encoding them, nothing written), MB of
   text per wall second and per CPU second (on a shared machine the CPU figure is the steadier), each in a
   fresh process, on the small corpus (`--throughput-on big` for the big one: three more passes over it);
2. memory: peak resident memory of `alum prepare` (2 processes; the parent and its workers summed, sampled
   every 20 ms) on the small corpus and on the big one;
3. resume: a fresh process from start to the first masked training batch at 1% and at 90% of an epoch,
   from the prepared corpus (map-style) and streaming from the text (a stream's state is taken where a run
   would have it: reader offset, a full shuffle buffer, RNG);
4. build-once: the data work of a two-process run, as it was (each process prepares the corpus itself,
   both at once) and as it is (rank 0 prepares with every core, the other waits): wall and CPU seconds.

    python benchmarks/prepare_bench.py --size 20MB    # the tiny mode: a smoke test, ~2 minutes
    python benchmarks/prepare_bench.py --size 2GB     # the full run (~30 minutes on 2 cores)

The corpus is real text (data/corpus/*.txt and ../shared/data/corpus), repeated and shuffled at the line
level, written under --work (default /tmp/alum-bench, deleted at the end unless --keep). A byte-level BPE
of 16k tokens is trained on the source text first. Writes benchmarks/results/prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000


def size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in (("GB", 1000 * MB), ("MB", MB), ("KB", 1000)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2GB", help="the big corpus (default 2GB); the small one is a tenth")
    parser.add_argument("--small", default=None, help="the small corpus (default: size / 10)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/alum-bench"))
    parser.add_argument("--data", type=Path, nargs="+",
                        default=[REPO / "data" / "corpus", REPO.parent / "shared" / "data" / "corpus"])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora")
    parser.add_argument("--throughput-on", choices=["small", "big"], default="small",
                        help="the corpus of the 1-process, 2-process and floor throughput runs (default: small; "
                             "memory and resume always use the big one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prepare.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # internal: one measured run
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child[0]](*args.child[1:])
    big = size(args.size)
    small = size(args.small) if args.small else big // 10
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        results = run_all(args, small, big)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))
    print(f"wrote {args.out}")


# ---------------------------------------------------------------------------------------------- inputs


def source_lines(data: list[Path]) -> list[bytes]:
    lines = []
    for root in data:
        for path in sorted(Path(root).rglob("*.txt")):
            lines += [line.rstrip(b"\r\n") + b"\n" for line in path.read_bytes().splitlines() if line.strip()]
    if not lines:
        sys.exit(f"no text under {data}")
    return lines


def write_corpus(directory: Path, lines: list[bytes], total: int, files: int = 4) -> Path:
    """`total` bytes of the lines, shuffled anew on each pass, over `files` files."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    per_file = total // files
    for i in range(files):
        with open(directory / f"part-{i}.txt", "wb") as out:
            written = 0
            while written < per_file:
                rng.shuffle(lines)
                chunk = b"".join(lines)[: per_file - written]
                chunk = chunk[: chunk.rfind(b"\n") + 1] or chunk
                out.write(chunk)
                written += len(chunk)
                if len(chunk) < 100:
                    break
    return directory


def train_tokenizer(lines: list[bytes], out: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator((line.decode("utf-8", "replace") for line in lines), vocab_size=16000,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                            model_max_length=512).save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------- measuring


def measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd` in a fresh process: wall seconds, CPU seconds (it and its children), and the peak of the
    summed resident memory of its process tree, sampled every 20 ms."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0]

    def sample():
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                total = 0
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                time.sleep(0.02)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = os.times()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    after = os.times()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    result = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak[0] / 2**20, 1)}
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if last.startswith("{"):
        result.update(json.loads(last))
    print(f"  {' '.join(cmd[3:5])}: {result}", flush=True)
    return result


def child(*args: str) -> list[str]:
    return [sys.executable, __file__, "--child", *args]


def child_floor(corpus: str, tokenizer: str) -> None:
    """Plain `tokenizers`: read the files line by line, encode_batch 1000 lines at a time, take the ids."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer) / "tokenizer.json"))
    started, tokens, text = time.perf_counter(), 0, 0
    for path in sorted(Path(corpus).iterdir()):
        with open(path, encoding="utf-8") as f:
            batch = []
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    batch.append(line)
                    text += len(line.encode("utf-8"))
                if len(batch) == 1000:
                    tokens += sum(len(e.ids) for e in tok.encode_batch(batch))
                    batch = []
            tokens += sum(len(e.ids) for e in tok.encode_batch(batch))
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "tokens": tokens, "text_bytes": text}))


def child_prepare(corpus: str, tokenizer: str, out: str, processes: str, block: str) -> None:
    from alum.pretrain import prepare

    files = sorted(Path(corpus).iterdir())
    started = time.perf_counter()
    manifest = prepare.prepare(files, tokenizer, Path(out), block_size=int(block), num_proc=int(processes),
                               progress=False)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "blocks": manifest["blocks"],
                      "text_bytes": manifest["text_bytes"], "processes": manifest["processes"]}))


def child_resume(kind: str, source: str, tokenizer: str, fraction: str, block: str, state_file: str = "") -> None:
    """Start to first batch: the data setup of a training run (alum.pretrain.data), its order set to the
    saved position, one masked batch drawn."""
    started = time.perf_counter()
    import torch
    from transformers import AutoTokenizer

    from alum.config import from_dict
    from alum.pretrain.config import DataConfig, MaskingConfig
    from alum.pretrain.data import MaskedBatches, batch_order, build_blocks

    imported = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tokenizer)
    fields = {"tokenizer": tokenizer, "block_size": int(block), "validation": 100}
    fields |= {"prepared": source} if kind == "prepared" else {"files": [source], "streaming": True}
    cfg = from_dict(DataConfig, fields, prefix="data.")
    blocks = build_blocks(cfg, tok, whole_word=False)
    order = batch_order(blocks, 16, seed=0)
    if kind == "prepared":
        order.load({"epoch": 0, "position": int(float(fraction) * order.per_epoch)})
    else:
        order.load(torch.load(state_file, weights_only=False))
    item = next(iter(order))
    rows = [blocks.train[i] for i in item] if blocks.train_size is not None else item  # as the loop does
    batch = MaskedBatches(tok, MaskingConfig(), seed=0)(rows)
    done = time.perf_counter()
    print(json.dumps({"after_imports_s": round(done - imported, 3), "in_process_s": round(done - started, 3),
                      "batch": list(batch["input_ids"].shape)}))


def child_stream_state(corpus: str, tokenizer: str, fraction: str, block: str, out: str) -> None:
    """The state of a streaming run at `fraction` of an epoch: the reader at that offset (a line start), a
    full shuffle buffer (10,000 blocks), the RNG; what a checkpoint there holds."""
    import torch
    from transformers import AutoTokenizer

    from alum.config import from_dict
    from alum.pretrain.config import DataConfig
    from alum.pretrain.data import batch_order, build_blocks

    tok = AutoTokenizer.from_pretrained(tokenizer)
    cfg = from_dict(DataConfig, {"tokenizer": tokenizer, "block_size": int(block), "validation": 100,
                                 "files": [corpus], "streaming": True}, prefix="data.")
    blocks = build_blocks(cfg, tok, whole_word=False)
    stream = blocks.train
    offset_part = min(int(float(fraction) * len(stream.parts)), len(stream.parts) - 1)
    part = stream.parts[offset_part]
    # the reader at `fraction` of the corpus: that share of whole parts, then into the part by bytes
    within = float(fraction) * len(stream.parts) - offset_part
    at = part.start + int(within * (part.end - part.start))
    with open(part.file, "rb") as f:
        f.seek(max(at - 1, 0))
        at = max(at - 1, 0) + len(f.readline()) if at > 0 else 0
    stream.part, stream.position = offset_part, at
    order = batch_order(blocks, 16, seed=0)
    next(iter(order))  # fills the buffer from there
    torch.save(order.state(), out)
    print(json.dumps({"part": offset_part, "position": at, "buffer": len(stream.buffer)}))


CHILDREN = {"floor": child_floor, "prepare": child_prepare, "resume": child_resume, "stream_state": child_stream_state}


# ---------------------------------------------------------------------------------------------- the run


def run_all(args, small_bytes: int, big_bytes: int) -> dict:
    work, block = args.work, str(args.block_size)
    t0 = time.perf_counter()
    lines = source_lines(args.data)
    tokenizer = train_tokenizer(lines, work / "tokenizer")
    small = write_corpus(work / "small", lines, small_bytes)
    big = write_corpus(work / "big", lines, big_bytes)
    del lines
    print(f"corpora written ({time.perf_counter() - t0:.0f}s)", flush=True)
    one_core = {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}
    r: dict = {}

    def mbps(result):
        return round(result["text_bytes"] / MB / result["seconds"], 2)

    rated = big if args.throughput_on == "big" else small
    r["floor_encode_batch_1core"] = measured(child("floor", str(rated), str(tokenizer)), env=one_core)
    # what the hardware gives two threads of the same work: on a VM whose two vCPUs share a core, the ceiling
    # of any 2-process scaling
    r["floor_encode_batch_2threads"] = measured(child("floor", str(rated), str(tokenizer)),
                                                env={"TOKENIZERS_PARALLELISM": "true", "RAYON_NUM_THREADS": "2"})
    r["prepare_1proc"] = measured(child("prepare", str(rated), str(tokenizer), str(work / "p1"), "1", block))
    shutil.rmtree(work / "p1", ignore_errors=True)
    r["prepare_2proc_small"] = measured(child("prepare", str(small), str(tokenizer), str(work / "ps"), "2", block))
    r["prepare_2proc"] = measured(child("prepare", str(big), str(tokenizer), str(work / "p2"), "2", block))
    print(f"throughput done ({time.perf_counter() - t0:.0f}s)", flush=True)
    for key in ("floor_encode_batch_1core", "floor_encode_batch_2threads", "prepare_1proc", "prepare_2proc",
                "prepare_2proc_small"):
        r[key]["mb_per_s"] = mbps(r[key])
        r[key]["mb_per_cpu_s"] = round(r[key]["text_bytes"] / MB / r[key]["cpu_s"], 2)
    two_rated = r["prepare_2proc"] if rated == big else r["prepare_2proc_small"]

    # resume: the prepared corpus (big) and streaming from the big corpus's text
    resume = {}
    for fraction in ("0.01", "0.9"):
        resume[f"prepared_{fraction}"] = measured(child("resume", "prepared", str(work / "p2"), str(tokenizer), fraction, block))
        state = work / f"stream-{fraction}.pt"
        measured(child("stream_state", str(big), str(tokenizer), fraction, block, str(state)))
        resume[f"streaming_{fraction}"] = measured(child("resume", "streaming", str(big), str(tokenizer), fraction,
                                                         block, str(state)))
    r["resume"] = resume
    print(f"resume done ({time.perf_counter() - t0:.0f}s)", flush=True)

    # build-once: the small corpus, as a two-process run's data work was (both prepare) and is (rank 0 does)
    started, before = time.perf_counter(), os.times()
    procs = [subprocess.Popen(child("prepare", str(small), str(tokenizer), str(work / f"each{i}"), "1", block),
                              stdout=subprocess.DEVNULL) for i in range(2)]
    assert all(p.wait() == 0 for p in procs)
    after = os.times()
    r["two_ranks_each_prepare"] = {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(after.children_user - before.children_user + after.children_system - before.children_system, 2)}
    r["two_ranks_build_once"] = {k: r["prepare_2proc_small"][k] for k in ("wall_s", "cpu_s")}

    floor, one, two = r["floor_encode_batch_1core"], r["prepare_1proc"], two_rated
    summary = {
        "text_mb": {"small": round(small_bytes / MB), "big": round(big_bytes / MB)},
        "throughput_on": args.throughput_on,
        "mb_per_s": {"floor_1core": floor["mb_per_s"], "floor_2threads": r["floor_encode_batch_2threads"]["mb_per_s"],
                     "prepare_1proc": one["mb_per_s"], "prepare_2proc": two["mb_per_s"],
                     "prepare_2proc_big": r["prepare_2proc"]["mb_per_s"]},
        "mb_per_cpu_s": {"floor_1core": floor["mb_per_cpu_s"], "prepare_1proc": one["mb_per_cpu_s"],
                         "prepare_2proc": two["mb_per_cpu_s"], "prepare_2proc_big": r["prepare_2proc"]["mb_per_cpu_s"]},
        "prepare_1proc_vs_floor_wall": round(floor["mb_per_s"] / one["mb_per_s"], 3),
        "prepare_1proc_vs_floor_cpu": round(floor["mb_per_cpu_s"] / one["mb_per_cpu_s"], 3),
        "scaling_2proc_vs_1proc": round(two["mb_per_s"] / one["mb_per_s"], 3),
        "floor_scaling_2threads_vs_1": round(r["floor_encode_batch_2threads"]["mb_per_s"] / floor["mb_per_s"], 3),
        "peak_rss_mb": {"small": r["prepare_2proc_small"]["peak_rss_mb"], "big": r["prepare_2proc"]["peak_rss_mb"]},
        "resume_s": {k: v["wall_s"] for k, v in resume.items()},
        "resume_data_setup_s": {k: v["after_imports_s"] for k, v in resume.items()},
        "resume_90_vs_1": {kind: round(resume[f"{kind}_0.9"]["wall_s"] / resume[f"{kind}_0.01"]["wall_s"], 3)
                           for kind in ("prepared", "streaming")},
        "two_ranks": {"each_prepares": r["two_ranks_each_prepare"], "build_once": r["two_ranks_build_once"]},
    }
    return {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "block_size": args.block_size,
            "summary": summary, "runs": r, "total_s": round(time.perf_counter() - t0)}


def machine() -> dict:
    import tokenizers
    import torch

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "tokenizers": tokenizers.__version__,
            "load_average_at_start": os.getloadavg()}


if __name__ == "__main__":
    main()
