#!/usr/bin/env bash
# The GPU check of issue 19 in one call, for whoever next has an NVIDIA GPU:
#
#   bash benchmarks/gpu_check.sh [OUT]        # OUT defaults to gpu_check/<UTC time>
#
# 1. pytest tests/test_cuda.py (every basis, layer family and net on cuda in float32,
#    16-mixed and bf16-mixed against float64 on the CPU; compiled=True; grid updates;
#    LoTRA; one-epoch fits with accelerator gpu and their checkpoints; host syncs per
#    step; DDP over every GPU; FSDP on a large KAN)           -> OUT/test_cuda.txt
# 2. benchmarks/kan_linear.py --device cuda --compile at three GPU shapes, inkan and
#    efficient-kan rows where they import                    -> OUT/kan_linear_cuda.txt
# 3. benchmarks/precision_epoch.py: a KAN training epoch in 32-true, 32-tf32,
#    bf16-mixed and 16-mixed                                 -> OUT/precision_epoch.txt
#
# Each step has its own time limit (3.5 + 3 + 1 minutes: under 8 in all); a failing or
# timed-out step is reported and the others still run; the exit status is 1 if any
# failed. Without CUDA it stops at once with exit status 2. PYTHON picks the interpreter.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python}
out=${1:-gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
case $out in /*) ;; *) out=$PWD/$out ;; esac  # relative to the caller's folder

if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
then
    echo "gpu_check.sh: no CUDA device: torch.cuda.is_available() is False for $python" \
        "(or torch does not import); run this on a machine with an NVIDIA GPU and a CUDA" \
        "build of torch, or set PYTHON to an interpreter that has one" >&2
    exit 2
fi
cd "$root"
if ! "$python" -c 'import lightning_kan, pytest' 2>/dev/null; then
    echo "gpu_check.sh: lightning_kan or pytest does not import for $python; install the" \
        "package first (pip install -e '.[dev]' in $root)" >&2
    exit 2
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
    date -u
    git rev-parse HEAD 2>/dev/null
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$out/environment.txt"

failed=()
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.txt" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
    [ "$status" -eq 0 ] || failed+=("$name")
}

step test_cuda 210 "$python" -m pytest -q tests/test_cuda.py -p no:cacheprovider \
    --junitxml="$out/test_cuda.xml"
step kan_linear_cuda 180 "$python" benchmarks/kan_linear.py --device cuda --compile bspline \
    --bases bspline,chebyshev --repeats 10
step precision_epoch 60 "$python" benchmarks/precision_epoch.py --epochs 3

echo "results in $out" | tee -a "$out/summary.txt"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "gpu_check.sh: failed or timed out: ${failed[*]} (see $out/<name>.txt)" >&2
    exit 1
fi
