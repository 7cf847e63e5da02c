#!/usr/bin/env bash
# One plain process (CPU or one GPU): the alum command itself, no launcher needed.
#   bash launch/single.sh <alum subcommand> [arguments...]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "${ALUM_PYTHON:-$here/.venv/bin/python}" -m alum.cli "$@"
