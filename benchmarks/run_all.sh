#!/usr/bin/env bash
# Every benchmark, one after the other; each writes its JSON into benchmarks/results/ and prints its ratios.
# About 10 minutes on a 2-core CPU. Run on an otherwise idle machine: the figures are wall-clock ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${ALUM_PYTHON:-.venv/bin/python}"
"$python" benchmarks/tokenizer_bench.py
"$python" benchmarks/pretrain_bench.py --shapes tiny bert-base
"$python" benchmarks/pretrain_bench.py --checkpointing --shapes tiny
