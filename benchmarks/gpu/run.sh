#!/usr/bin/env bash
# The GPU check in one command, within 8 minutes, on a fresh GPU machine with no network:
#
#   bash benchmarks/gpu/run.sh OUTPUT_DIR [EXTRA_EVAL_FILES...]
#   bash benchmarks/gpu/run.sh --tiny OUTPUT_DIR [EXTRA_EVAL_FILES...]     (or ALUM_GPU_TINY=1)
#
# First, where pip works: `bash benchmarks/gpu/fetch.sh` fills benchmarks/gpu/wheels/ (git ignores it;
# carry it to the GPU machine). This script then
#   0. installs from those wheels what is missing (deepspeed, datasets, ...) and this checkout, into
#      /tmp/alum-gpu/site (PYTHONPATH), and unpacks the MiniLM model carried with them;
#   1. runs the `gpu` tests (pytest -m gpu);
#   2. runs the pretraining benchmark: BERT-base MLM, sequence 128, bf16; our standard and ALUM steps and
#      transformers.Trainer side by side: tokens/s, MFU, peak memory per phase (benchmarks/pretrain_bench.py);
#   3. runs the evidence: MiniLM fine-tuned on full SST-2 and RTE with none, smart and freelb, seeds until
#      its budget is spent, every seed's figures in OUTPUT_DIR/evidence.json; the extra files (a task's
#      format, `rte:FILE` or a FILE whose header tells its task; inside the checkout, which is what travels)
#      scored with every trained model;
#   4. prints one table last (also OUTPUT_DIR/summary.txt).
# Each part has a deadline (`timeout`); a part that overruns is stopped and the table says so. What a part
# wrote before it stopped stays in OUTPUT_DIR.
#
# --tiny: the same parts with tiny shapes, a few steps, on the CPU (the gpu tests skip themselves), a tiny
# model built on the fly, and the first 200 lines of the GLUE files fetch.sh carried if present, else of the
# repo's SST-2 sample (then RTE is reported as not run).
set -uo pipefail
tiny="${ALUM_GPU_TINY:-0}"
if [[ "${1:-}" == "--tiny" ]]; then tiny=1; shift; fi
if [[ $# -lt 1 ]]; then
    echo "usage: bash benchmarks/gpu/run.sh [--tiny] OUTPUT_DIR [EXTRA_EVAL_FILES...]" >&2
    exit 2
fi
# paths as the caller wrote them, made absolute before moving to the checkout's root
mkdir -p "$1" && out="$(cd "$1" && pwd)"
shift
extra=()
for spec in "$@"; do
    prefix="" path="$spec"
    if [[ "$spec" =~ ^(sst2|rte):(.*)$ ]]; then prefix="${BASH_REMATCH[1]}:" path="${BASH_REMATCH[2]}"; fi
    [[ "$path" == /* ]] || path="$PWD/$path"
    extra+=("$prefix$path")
done
cd "$(dirname "$0")/../.."
carried=benchmarks/gpu/wheels
scratch="${ALUM_GPU_SCRATCH:-/tmp/alum-gpu}"
# Here the checkout's .venv; on the GPU machine the image's python3, which holds its torch.
py="${ALUM_PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}"
export WANDB_MODE=disabled HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# Deadlines in seconds: the whole run (the install included; the table takes a second after it), the tests,
# the benchmark; the evidence gets what is left.
if (( tiny )); then
    total=300 tests_budget=60 pretrain_budget=150
else
    total=470 tests_budget=90 pretrain_budget=120
fi
started=$SECONDS
: > "$out/parts.tsv"

# ---- 0. what the machine lacks, from the carried wheels; this checkout; the model and data ----
site="$scratch/site"
# present NAME...: every module can be found; find_spec looks without importing (deepspeed takes seconds)
present() {
    "$py" -P -c '
import importlib.util, sys
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False
sys.exit(not all(found(n) for n in sys.argv[1:]))' "$@"
}
if ! present deepspeed datasets; then
    if ! compgen -G "$carried/*.whl" >/dev/null; then
        echo "run.sh: deepspeed or datasets is missing and there are no wheels in $carried:" \
             "run benchmarks/gpu/fetch.sh where pip works, and carry $carried" >&2
        exit 1
    fi
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$carried"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! present alum.finetune; then
    # a plain (not editable) install of this checkout: its stage folders map into the `alum` package
    "$py" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target "$site" .
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

if (( tiny )); then
    # the first 200 examples of each file: the carried GLUE files if fetch.sh ran, else the repo's SST-2 sample
    source="$carried/glue"; [[ -d "$source" ]] || source=data/glue
    glue="$scratch/tiny-glue"
    rm -rf "$glue"
    for file in "$source"/*/*.tsv; do
        task="$(basename "$(dirname "$file")")"
        mkdir -p "$glue/$task" && head -n 201 "$file" > "$glue/$task/$(basename "$file")"
    done
    model=(--tiny --seeds 2)  # evidence.py builds a tiny model in its own process
else
    glue="$carried/glue"
    "$py" benchmarks/gpu/minilm.py unpack "$carried/minilm" "$scratch/minilm"
    model=(--model "$scratch/minilm")
fi
echo "run.sh: ready after $((SECONDS - started)) s; python $("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())')"

part() {  # part NAME BUDGET COMMAND...: run it under its deadline, record its exit code and time
    local name=$1 budget=$2 begun=$SECONDS rc
    shift 2
    echo "==== run.sh: $name (deadline ${budget} s) ===="
    timeout --kill-after=15 "$budget" "$@"
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - begun))" "$budget" >> "$out/parts.tsv"
}

# ---- 1. the gpu tests (-P: `alum` from the install, not the checkout's top folder) ----
part tests "$tests_budget" "$py" -P -m pytest -q -m gpu tests -p no:cacheprovider --continue-on-collection-errors \
    --junitxml="$out/gpu_tests.xml"

# ---- 2. the pretraining benchmark ----
if (( tiny )); then
    shape=(--shapes tiny --batch 4 --seq 64 --steps 3 --warmup 1)
else
    shape=(--shapes bert-base --precision bf16 --batch 256 --seq 128 --steps 20 --warmup 3)
fi
part pretrain "$pretrain_budget" "$py" benchmarks/pretrain_bench.py "${shape[@]}" --out "$out/pretrain.json"

# ---- 3. the evidence, until the whole run's deadline; it starts no seed it predicts would end past its own
# budget, which leaves 25 s for its start-up and a last run slower than the one before ----
evidence_budget=$((total - (SECONDS - started)))
(( evidence_budget < 60 )) && evidence_budget=60  # time for one round, if the parts before ran long
# (the runs' own logs go to scratch: OUTPUT_DIR keeps the few files a device call brings back)
part evidence "$evidence_budget" "$py" benchmarks/gpu/evidence.py "${model[@]}" --glue "$glue" --out "$out" \
    --logs "$scratch/logs" --budget $((evidence_budget - 25)) --extra "${extra[@]}"

# ---- 4. the table ----
echo "==== run.sh: done in $((SECONDS - started)) s; the figures: $out ===="
"$py" benchmarks/gpu/report.py "$out"
