#!/usr/bin/env bash
# GPU validation (issue 7) as one timed script for a lent GPU machine that has PyTorch but no package registry.
#
#   bash benchmarks/run_gpu.sh [BUDGET_SECONDS] [STEPS]
#
# STEPS (comma-separated, in order; default: all of the first run's): env (versions, matmul peak, NVENC/NVDEC), tests, ab (eager block variants A/B and a
# kernel profile), fold (the decoders' upsampling blocks plain against folded, A/B; $FOLD_MAX_CHANNELS adds a variant
# folding blocks up to that width), fp16 (with baseline and stages),
# content-size (the lower-resolution mode, $CONTENT_SIZE default 540, at $CONTENT_SIZES default 1080p,4k), fp16-model, e2e, e2e-clip (end to end on the real 720p clip's
# frames, with stages), video (`adain video` on that clip, eager and --compile, one model at a time), threads
# (that clip through video_clips.py, alternating torch's CPU thread counts $THREADS, default auto,1,4), compile,
# compile-model, fp32-bf16;
# train (issue 5: train the cd16x AdaIN decoder for $TRAIN_SECONDS, default 420, from the shipped one, at the
# paper's batch 8 of 256 px crops; SIGTERM at the limit saves the run) and eval (the shipped and the new decoder on
# the held-out 8 x 12 images).
#
# Expects $CARRY/av.tar.xz (the PyAV 18.1.0 manylinux wheel's files) and $CARRY/shared.tar.xz (../shared's
# weights and media) in the repository: `bash benchmarks/pack_gpu_carry.sh` makes both in .devcarry (the default
# CARRY); `bash benchmarks/pack_gpu_carry.sh training` makes them in .devcarry-train for the train and eval steps,
# which need media/train (run them with CARRY=.devcarry-train). Without av.tar.xz, the machine's own PyAV is used.
# TESTS (pytest arguments, default the whole suite) narrows the tests step; BENCH_MODELS and BENCH_SIZES narrow the
# bench steps (default vgg,cd16x and 256,512,720p,1080p,4k).
# Every log, JSON and markdown file goes to $RUN, and after each step all of them are packed into
# $OUT/results.tgz (the device tool returns at most 8 files). Each step gets what is left of the budget, so a
# slow step cannot take the results of the others with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
RUN=/tmp/gpu-run
BUDGET=${1:-450}
STEPS=${2:-env,fp16,tests,e2e,ab,compile,fp32-bf16}
mkdir -p "$OUT" "$RUN"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with the smaller of SECONDS and the budget left, logged to $RUN/NAME.log
          # At the limit the command gets $STEP_SIGNAL (default TERM; the tests take INT, on which pytest still
          # reports the failures so far), and KILL 15 s later.
    local name=$1 want=$2; shift 2
    local left=$((BUDGET - SECONDS))
    local limit=$((want < left ? want : left))
    if ((limit < 10)); then echo "[$name] skipped: budget spent" | tee -a "$RUN/steps.txt"; return; fi
    local began=$SECONDS
    timeout -s "${STEP_SIGNAL:-TERM}" -k 15 "$limit" "$@" >"$RUN/$name.log" 2>&1
    local code=$?
    echo "[$name] exit $code after $((SECONDS - began)) s (limit $limit s)" | tee -a "$RUN/steps.txt"
    tar -czf "$OUT/results.tgz" -C "$RUN" .
}

# Install: no registry is reachable there, so PyAV comes as its wheel's files and the project installs
# without dependencies (torch, numpy, opencv, rich, pytest and matplotlib are the machine's own).
CARRY=${CARRY:-.devcarry}
mkdir -p /tmp/site /tmp/shared
if [[ -f $CARRY/av.tar.xz ]]; then
    tar -xJf "$CARRY/av.tar.xz" -C /tmp/site
    export PYTHONPATH=/tmp/site
fi
tar -xJf "$CARRY/shared.tar.xz" -C /tmp/shared
export REALTIME_ADAIN_SHARED=/tmp/shared REALTIME_ADAIN_WEIGHTS=/tmp/shared/weights
step install 60 python3 -m pip install --no-deps --no-build-isolation -e .
nvidia-smi >"$RUN/nvidia-smi.txt" 2>&1

CLIP=/tmp/shared/media/video/bbb_1280x720_25fps_aac_5.1.mp4
STYLE=/tmp/shared/media/styles/vangogh_starry_night.jpg
BENCH=(python3 cli.py bench --device cuda --models "${BENCH_MODELS:-vgg,cd16x}" --sizes "${BENCH_SIZES:-256,512,720p,1080p,4k}" --iters 30 --warmup 3
       --max-seconds 1.5 --overwrite)
TIMEOUT=()
python3 -c "import pytest_timeout" 2>/dev/null && TIMEOUT=(--timeout 100)  # one stuck test must not take the rest

for name in ${STEPS//,/ }; do
    case $name in
    env) step environment 60 python3 benchmarks/gpu_probe.py ;;
    tests) STEP_SIGNAL=INT step tests 210 python3 -m pytest -v -p no:cacheprovider -rfEs --durations=15 --tb=short "${TIMEOUT[@]}" ${TESTS:-} ;;
    ab) step ab 60 python3 benchmarks/gpu_probe.py --profile vgg,cd16x --size 1080p ;;
    fold) step fold 200 python3 benchmarks/gpu_probe.py --fold "${BENCH_MODELS:-vgg,cd16x}" --sizes 720p,1080p,4k \
            --compile-size 1080p ${FOLD_MAX_CHANNELS:+--max-channels "$FOLD_MAX_CHANNELS"} ;;
    fp16) step bench-fp16 120 "${BENCH[@]}" --precision fp16 --modes baseline,model \
            --json "$RUN/gpu-fp16.json" --markdown "$RUN/gpu-fp16.md" ;;
    content-size) step bench-content-size 90 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --no-stages \
            --sizes "${CONTENT_SIZES:-1080p,4k}" --content-size "${CONTENT_SIZE:-540}" \
            --json "$RUN/gpu-content-size.json" --markdown "$RUN/gpu-content-size.md" ;;
    fp16-model) step bench-fp16-model 60 "${BENCH[@]}" --precision fp16 --modes model \
            --json "$RUN/gpu-fp16-model.json" --markdown "$RUN/gpu-fp16-model.md" ;;
    e2e) step bench-e2e 90 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --no-stages \
            --json "$RUN/gpu-e2e.json" --markdown "$RUN/gpu-e2e.md" ;;
    e2e-clip) step bench-e2e-clip 120 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --clip "$CLIP" \
            --json "$RUN/gpu-e2e-clip.json" --markdown "$RUN/gpu-e2e-clip.md" ;;
    video) models=${BENCH_MODELS:-vgg,cd16x}  # the user's command on the real 720p clip, eager then compiled
           for model in ${models//,/ }; do
               for flags in "" "--compile"; do
                   step "video-$model${flags:+-compiled}" 90 python3 cli.py video "$CLIP" --style "$STYLE" \
                       --model "$model" --device cuda $flags -o "/tmp/video-$model$flags.mp4" --overwrite
               done
           done
           step video-readback 60 python3 - /tmp/video-*.mp4 <<'PY'
import sys, av, numpy as np
def frames(path):
    with av.open(path) as container:
        return container.streams.video[0].codec_context.name, [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
for path in sys.argv[1:]:
    codec, decoded = frames(path)
    print(path, codec, len(decoded), "frames")
    if path.endswith("--compile.mp4"):  # compiled against eager: the same picture up to rounding and the encoder
        eager = frames(path.replace("--compile.mp4", ".mp4"))[1]
        diff = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(decoded, eager)]
        print(f"  against eager: mean abs difference per frame {np.mean(diff):.2f} levels, worst frame {np.max(diff):.2f}")
PY
           ;;
    threads) step video-threads 150 python3 benchmarks/video_clips.py --media /tmp/shared/media --models cd16x,vgg \
                 --sizes 1280x720 --frames 132 --threads "${THREADS:-auto,1,4}" --rounds 3 \
                 --json "$RUN/gpu-video-threads.json" ;;
    compile) step bench-compile 150 "${BENCH[@]}" --precision fp16 --modes model,end_to_end --no-stages --compile \
            --json "$RUN/gpu-compile.json" --markdown "$RUN/gpu-compile.md" ;;
    compile-model) step bench-compile-model 100 "${BENCH[@]}" --precision fp16 --modes model --no-stages --compile \
            --json "$RUN/gpu-compile-model.json" --markdown "$RUN/gpu-compile-model.md" ;;
    fp32-bf16) step bench-fp32-bf16 90 "${BENCH[@]}" --precision fp32,bf16 --modes model --no-stages \
            --json "$RUN/gpu-fp32-bf16.json" --markdown "$RUN/gpu-fp32-bf16.md" ;;
    train) step train-cd16x "${TRAIN_SECONDS:-420}" python3 cli.py train --encoder cd16x --init-decoder cd16x \
            --content /tmp/shared/media/train/content --styles /tmp/shared/media/train/styles --style-stats image \
            --crop 256 --batch-size 8 --ema 0.999 --iters 1000000 --save-every 250 --sample-every 1000 \
            --out "$RUN/cd16x-gpu" ;;
    eval) EVAL=(python3 cli.py eval --model cd16x --content /tmp/shared/media/content --styles /tmp/shared/media/styles
                --size 384 --style-size 512)
          step eval-shipped 120 "${EVAL[@]}" --json "$RUN/eval-cd16x-shipped.json"
          step eval-trained 120 "${EVAL[@]}" --decoder-weights "$RUN/cd16x-gpu/decoder.pth" \
              --json "$RUN/eval-cd16x-gpu.json" ;;
    *) echo "unknown step $name" >&2 ;;
    esac
done
echo "total $SECONDS s" | tee -a "$RUN/steps.txt"
tar -czf "$OUT/results.tgz" -C "$RUN" .
