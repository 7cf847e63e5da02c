#!/usr/bin/env bash
# One plain process (CPU or one GPU): the alum command itself, no launcher needed.
#   bash launch/single.sh <alum subcommand> [arguments...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
exec "$python" -m alum.cli "$@"
