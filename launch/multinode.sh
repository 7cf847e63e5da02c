#!/usr/bin/env bash
# Several nodes from a DeepSpeed hostfile (one line per node: "hostname slots=8"), started from the first
# node; the deepspeed launcher reaches the others over passwordless ssh (pdsh) with the same checkout path
# and .venv on every node.
#   bash launch/multinode.sh HOSTFILE <alum subcommand> [arguments...]
set -euo pipefail
if [[ $# -lt 2 || ! -f "$1" ]]; then
    echo "usage: bash launch/multinode.sh HOSTFILE <alum subcommand> [arguments...]" >&2
    exit 2
fi
hostfile=$1; shift
source "$(dirname "$0")/common.sh"
launcher="$(dirname "$python")/deepspeed"
master="${MASTER_ADDR:-$(head -n1 "$hostfile" | awk '{print $1}')}"
cd "$alum_root"
exec "$launcher" --hostfile "$hostfile" --master_addr "$master" --master_port "${MASTER_PORT:-29500}" \
    --no_local_rank --module alum.cli "$@"
