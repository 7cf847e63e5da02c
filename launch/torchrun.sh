#!/usr/bin/env bash
# The same as local.sh, with torchrun instead of the deepspeed launcher (for clusters that standardise on it).
#   bash launch/torchrun.sh N <alum subcommand> [arguments...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
usage_if_not_count "$@"
n=$1; shift
has_gpu || cpu_processes "$n"
exec "$python" -m torch.distributed.run --standalone --nproc_per_node "$n" -m alum.cli "$@"
