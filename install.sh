#!/usr/bin/env bash
# Creates .venv and installs alum into it (editable), with the right PyTorch build for this machine:
# a CUDA build where `nvidia-smi` sees a GPU, otherwise a CPU-only build (never the multi-GB CUDA wheels).
#   bash install.sh          runtime dependencies
#   bash install.sh --dev    plus the test and benchmark extras
set -euo pipefail
cd "$(dirname "$0")"
TORCH_VERSION="${ALUM_TORCH_VERSION:-2.13.0}"
PY="${PYTHON:-python3}"
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"

[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --progress-bar off)

if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "install.sh: GPU found, installing torch==$TORCH_VERSION (CUDA build)"
        "${pip[@]}" "torch==$TORCH_VERSION"
    else
        echo "install.sh: no GPU, installing torch==$TORCH_VERSION (CPU build)"
        # A CPU wheel pip already knows (a local wheel directory) first, offline; else PyTorch's CPU index.
        "${pip[@]}" --no-deps --no-index "torch==$TORCH_VERSION" 2>/dev/null \
            || "${pip[@]}" --no-deps "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
        "${pip[@]}" "torch==$TORCH_VERSION"   # torch's own dependencies, from the usual index
    fi
fi
echo "install.sh: installing alum$extras"
"${pip[@]}" -e ".$extras"
