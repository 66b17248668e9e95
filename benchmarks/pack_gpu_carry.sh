#!/usr/bin/env bash
# Pack what run_gpu.sh needs on a GPU machine without a package registry into a git-ignored folder:
# .devcarry/ for tests and benchmarks, .devcarry-train/ for training (run_gpu.sh reads $CARRY, default .devcarry).
# The two fit the device tool's 64 MiB one at a time, so a session can carry each to its own call:
#   av.tar.xz      the files of PyAV's manylinux wheel (xz: 25 MB instead of the wheel's 36 MB)
#   shared.tar.xz  what the steps read from ../shared:
#     bash benchmarks/pack_gpu_carry.sh            tests and benchmarks: all weights and media but media/train (19 MB)
#     bash benchmarks/pack_gpu_carry.sh training   the train and eval steps: the weights of vgg and cd16x, the
#                                                  evaluation images and media/train (36 MB)
# Either way, with the tree they stay under the device tool's 64 MiB. Run from anywhere; takes ~2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${REALTIME_ADAIN_SHARED:-../shared}
AV_VERSION=${AV_VERSION:-18.1.0}
MODE=${1:-validation}
CARRY=.devcarry
[[ $MODE == training ]] && CARRY=.devcarry-train
mkdir -p "$CARRY"
grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >>.git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$work" "av==$AV_VERSION"
mkdir "$work/site"
python3 -m zipfile -e "$work"/av-*.whl "$work/site"
tar -C "$work/site" -cf - . | xz -9 -T2 >"$CARRY/av.tar.xz"
if [[ $MODE == training ]]; then
    parts=(weights/adain-vgg/vgg.pth weights/adain-vgg/decoder.pth weights/cd16x media/train)
else
    parts=(weights media/video)
fi
tar -C "$SHARED" -cf - "${parts[@]}" media/content media/styles media/README.md media/LICENSES.md README.md |
    xz -6 -T2 >"$CARRY/shared.tar.xz"
ls -l "$CARRY"
