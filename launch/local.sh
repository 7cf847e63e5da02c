#!/usr/bin/env bash
# Start N processes on this node with the deepspeed launcher: one per GPU, or N CPU processes (gloo) where
# there is no GPU.
#   bash launch/local.sh N <alum subcommand> [arguments...]
#   bash launch/local.sh 8 pretrain --config configs/pretrain/bert-base.yaml --tokenizer tok/ --files corpus/
set -euo pipefail
source "$(dirname "$0")/common.sh"
usage_if_not_count "$@"
n=$1; shift
has_gpu || cpu_processes "$n"
launcher="$(dirname "$python")/deepspeed"
[[ -x "$launcher" ]] || launcher="deepspeed"
exec "$launcher" --num_gpus "$n" --master_port "${MASTER_PORT:-$(free_port)}" --no_local_rank \
    --module alum.cli "$@"
