#!/usr/bin/env bash
# The GPU check (issue 20), one script, under 8 minutes on one GPU:
#   1. install bigtrain with its test extra (pip install ".[test]"), and TensorFlow's CUDA
#      libraries (tensorflow[and-cuda]) if TensorFlow then sees no GPU where nvidia-smi does;
#   2. the GPU-marked tests, tests/gpu/test_gpu.py (strategy=gpu and mirrored over the GPUs found,
#      the fused kernels and XLA islands against plain TensorFlow on the GPU, bf16 and fp16,
#      export and reload);
#   3. the LM benchmark at GPT-2-small shape, `python -m scripts.bench_gpu`: tokens/s and MFU
#      against the GPU's peak, bf16 and fp32, with PyTorch beside it where torch imports.
#
# Usage: scripts/device_check.sh [--dry-run]
#   --dry-run  on a CPU, for CI: nothing installed; the GPU tests' kernel checks run on the CPU
#              (BIGTRAIN_GPU_DRY_RUN=1: a test calling a kernel wrongly fails here, not first on
#              a GPU), those that need a GPU skipped; the benchmark at tiny shapes
#              (tests/scripts/test_device_check.py runs this)
# Output: the console, and device_check.log, gpu_tests.xml, bench_gpu.json in $OUT (the device
# tool's return folder) if set, else in a folder of this run's own,
# scripts/results/device_check/<YYYYMMDD-HHMM>-<machine>-<commit7>/ (scripts/harness.py's name;
# bench_gpu.json there is a results file `python -m scripts.report` renders). Exit status: 0 if every
# step passed, 1 if one failed (the others still run), 2 if TensorFlow could not be installed
# (then PyTorch's half of the benchmark still runs, as bench_gpu.py --torch-only, if torch
# imports: the reference a TensorFlow GPU run will be held to). On the lent H200 (2026-12-04)
# it was 2: that machine has PyTorch, no TensorFlow and no registry (docs/contributing.md, "On a GPU").
set -uo pipefail

cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
    --dry-run) DRY=1 ;;
    "") ;;
    *) echo "usage: scripts/device_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
if [[ -n "${OUT:-}" ]]; then
    RESULTS=$OUT
else  # a folder per run: a run never writes over another's
    RESULTS=scripts/results/device_check/$($PY -m scripts.harness --run-name 2>/dev/null \
        || date -u +%Y%m%d-%H%M-unrecorded-unrecorded)
fi
mkdir -p "$RESULTS"
LOG="$RESULTS/device_check.log"
: >"$LOG"
FAILED=()
STARTED=$SECONDS

say() { echo "device_check: $*" | tee -a "$LOG"; }
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, record a failure
    local name=$1 limit=$2
    shift 2
    say "$name ($(( SECONDS - STARTED )) s in)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    if (( rc != 0 )); then
        say "$name FAILED (exit $rc$( (( rc == 124 )) && echo ", over its ${limit} s" ))"
        FAILED+=("$name")
    fi
    return "$rc"
}

say "$( ((DRY)) && echo "dry run on $(uname -m)" || echo "on $(hostname)" ); python: $($PY --version 2>&1)"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 \
        | sed 's/^/device_check: GPU: /' | tee -a "$LOG"
else
    say "no nvidia-smi: no NVIDIA GPU here"
fi

# ------------------------------------------------------------------ 1. install
TF=1  # 0: TensorFlow cannot run here; then only PyTorch's half of the benchmark runs
if ((DRY)); then
    say "dry run: nothing installed (bigtrain runs from this checkout)"
elif $PY -c "import bigtrain, tensorflow, pytest, hydra" 2>/dev/null; then
    say "bigtrain, TensorFlow, Hydra and pytest already import: nothing installed"
else
    step "install .[test]" 300 $PY -m pip install -q --retries 0 --timeout 15 ".[test]"
    if ! $PY -c "import bigtrain, tensorflow, pytest, hydra" 2>/dev/null; then
        TF=0
        say "bigtrain with TensorFlow does not import here and cannot be installed (no" \
            "package registry reachable?): TensorFlow's GPU build is ~2.8 GB of wheels" \
            "(tensorflow, nvidia-*-cu12), more than can be carried to an offline machine;" \
            "the GPU tests and bigtrain's benchmark rows cannot run"
    fi
    if ((TF)); then
        gpus() { $PY -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null | tail -1; }
        if [[ "$(gpus)" == "0" ]] && command -v nvidia-smi >/dev/null; then
            version=$($PY -c "import tensorflow as tf; print(tf.__version__)" 2>/dev/null | tail -1)
            step "install tensorflow[and-cuda]==$version" 300 \
                $PY -m pip install -q --retries 0 --timeout 15 "tensorflow[and-cuda]==$version"
        fi
        say "TensorFlow sees $(gpus) GPU(s)"
    fi
fi

# ------------------------------------------------------------------ 2. GPU-marked tests
if ((DRY)); then
    step "GPU tests (kernel checks on the CPU)" 180 env BIGTRAIN_GPU_DRY_RUN=1 \
        $PY -m pytest -q -n 0 -p no:cacheprovider -p no:hypothesispytest -rs -m gpu \
        --junitxml="$RESULTS/gpu_tests.xml" tests/gpu/test_gpu.py
    say "dry run: GPU tests that need a GPU skipped: no GPU here (on a GPU: pytest -m gpu tests/gpu/test_gpu.py)"
elif ((TF)); then
    step "GPU tests" 270 $PY -m pytest -q -n 0 -p no:cacheprovider -m gpu -rs \
        --junitxml="$RESULTS/gpu_tests.xml" tests/gpu/test_gpu.py
else
    say "GPU tests NOT RUN: no TensorFlow here"
fi

# ------------------------------------------------------------------ 3. LM benchmark
if ((DRY)); then
    step "LM benchmark (tiny, CPU)" 120 $PY -m scripts.bench_gpu --tiny --out "$RESULTS/bench_gpu.json"
elif ((TF)); then
    step "LM benchmark (GPT-2 small)" 330 $PY -m scripts.bench_gpu --out "$RESULTS/bench_gpu.json"
elif $PY -c "import torch" 2>/dev/null; then
    step "LM benchmark (GPT-2 small), PyTorch alone" 300 \
        $PY -m scripts.bench_gpu --torch-only --out "$RESULTS/bench_gpu.json"
else
    say "LM benchmark NOT RUN: neither TensorFlow nor PyTorch imports here"
fi

if ((!TF)); then
    say "done in $(( SECONDS - STARTED )) s, WITHOUT TensorFlow: $( ((${#FAILED[@]})) && echo "FAILED: ${FAILED[*]}; " )bigtrain not checked on this GPU"
    exit 2
fi
say "done in $(( SECONDS - STARTED )) s; $( ((${#FAILED[@]})) && echo "FAILED: ${FAILED[*]}" || echo "every step passed" )"
((${#FAILED[@]} == 0))
