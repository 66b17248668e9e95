#!/usr/bin/env bash
# GPU validation (issue 7) as one timed script for a lent GPU machine that has PyTorch but no package registry.
#
#   bash benchmarks/run_gpu.sh [BUDGET_SECONDS]
#
# Expects .devcarry/av.tar.xz (the PyAV 18.1.0 manylinux wheel's files) and .devcarry/shared.tar.xz (../shared's
# weights and media, without media/train) in the repository, and writes every log, JSON and markdown file to
# $OUT. Each step gets what is left of the budget, so a slow step cannot take the results of the others with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
BUDGET=${1:-450}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with the smaller of SECONDS and the budget left, logged to $OUT/NAME.log
    local name=$1 want=$2; shift 2
    local left=$((BUDGET - SECONDS))
    local limit=$((want < left ? want : left))
    if ((limit < 10)); then echo "[$name] skipped: budget spent" | tee -a "$OUT/steps.txt"; return; fi
    local began=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local code=$?
    echo "[$name] exit $code after $((SECONDS - began)) s (limit $limit s)" | tee -a "$OUT/steps.txt"
}

# Install: no registry is reachable there, so PyAV comes as its wheel's files and the project installs
# without dependencies (torch, numpy, opencv, rich, pytest and matplotlib are the machine's own).
mkdir -p /tmp/site /tmp/shared
tar -xJf .devcarry/av.tar.xz -C /tmp/site
tar -xJf .devcarry/shared.tar.xz -C /tmp/shared
export PYTHONPATH=/tmp/site
export REALTIME_ADAIN_SHARED=/tmp/shared REALTIME_ADAIN_WEIGHTS=/tmp/shared/weights
step install 60 python3 -m pip install --no-deps --no-build-isolation -e .
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
step environment 60 python3 benchmarks/gpu_probe.py

BENCH=(python3 cli.py bench --device cuda --models vgg,cd16x --sizes 256,512,720p,1080p,4k --iters 30 --warmup 3
       --max-seconds 1.5 --overwrite)
step bench-fp16 120 "${BENCH[@]}" --precision fp16 --modes baseline,model \
    --json "$OUT/gpu-fp16.json" --markdown "$OUT/gpu-fp16.md"
step tests 180 python3 -m pytest -q -p no:cacheprovider -rs --durations=15
step bench-e2e 90 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --no-stages \
    --json "$OUT/gpu-e2e.json" --markdown "$OUT/gpu-e2e.md"
step profile 40 python3 benchmarks/gpu_probe.py --profile vgg --size 1080p
step bench-compile 150 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --no-stages --compile \
    --json "$OUT/gpu-compile.json" --markdown "$OUT/gpu-compile.md"
step bench-fp32-bf16 90 "${BENCH[@]}" --precision fp32,bf16 --modes model --no-stages \
    --json "$OUT/gpu-fp32-bf16.json" --markdown "$OUT/gpu-fp32-bf16.md"
echo "total $SECONDS s" | tee -a "$OUT/steps.txt"
