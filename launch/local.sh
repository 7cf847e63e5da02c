#!/usr/bin/env bash
# Start N processes on this node with the deepspeed launcher: one per GPU, or N CPU processes (gloo) where
# there is no GPU.
#   bash launch/local.sh N <alum subcommand> [arguments...]
#   bash launch/local.sh 8 pretrain --config configs/pretrain/bert-base.yaml --tokenizer tok/ --files corpus/
set -euo pipefail
if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: bash launch/local.sh N <alum subcommand> [arguments...]" >&2
    exit 2
fi
n=$1; shift
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${ALUM_PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
launcher="$(dirname "$python")/deepspeed"
[[ -x "$launcher" ]] || launcher="deepspeed"
port="${MASTER_PORT:-$((29500 + RANDOM % 1000))}"
if ! (command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1); then
    export DS_ACCELERATOR=cpu ALUM_DIST_BACKEND=gloo
    # two CPU processes each wanting every core would slow each other down
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))}"
fi
exec "$launcher" --num_gpus "$n" --master_port "$port" --no_local_rank --module alum.cli "$@"
