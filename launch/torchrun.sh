#!/usr/bin/env bash
# The same as local.sh, with torchrun instead of the deepspeed launcher (for clusters that standardise on it).
#   bash launch/torchrun.sh N <alum subcommand> [arguments...]
set -euo pipefail
if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: bash launch/torchrun.sh N <alum subcommand> [arguments...]" >&2
    exit 2
fi
n=$1; shift
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${ALUM_PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
if ! (command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1); then
    export DS_ACCELERATOR=cpu ALUM_DIST_BACKEND=gloo
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))}"
fi
exec "$python" -m torch.distributed.run --standalone --nproc_per_node "$n" -m alum.cli "$@"
