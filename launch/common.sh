# Sourced by the launchers: the Python to run, and CPU-process settings where there is no GPU.
# ALUM_PYTHON overrides the interpreter (default: the checkout's .venv).
alum_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${ALUM_PYTHON:-$alum_root/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"

# CUDA_VISIBLE_DEVICES="" hides the GPUs from CUDA; nvidia-smi ignores it, so it is honoured here.
has_gpu() {
    [[ "${CUDA_VISIBLE_DEVICES-unset}" != "" ]] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

# N CPU processes talk over gloo and share the cores instead of each wanting all of them.
cpu_processes() {
    export DS_ACCELERATOR=cpu ALUM_DIST_BACKEND=gloo
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / $1 > 0 ? $(nproc) / $1 : 1 ))}"
}

# A port no other process is listening on, so two runs on one node never share a rendezvous.
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }

usage_if_not_count() {
    if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ ]]; then
        echo "usage: bash $0 N <alum subcommand> [arguments...]" >&2
        exit 2
    fi
}
