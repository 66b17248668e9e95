#!/usr/bin/env bash
# Pack what run_gpu.sh needs on a GPU machine without a package registry into .devcarry/ (git-ignored):
#   av.tar.xz      the files of PyAV's manylinux wheel (xz: 25 MB instead of the wheel's 36 MB)
#   shared.tar.xz  ../shared's weights and media without media/train (19 MB)
# Together with the tree they stay under the device tool's 64 MiB. Run from anywhere; takes ~2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${REALTIME_ADAIN_SHARED:-../shared}
AV_VERSION=${AV_VERSION:-18.1.0}
mkdir -p .devcarry
grep -qx "/.devcarry/" .git/info/exclude 2>/dev/null || echo "/.devcarry/" >>.git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$work" "av==$AV_VERSION"
mkdir "$work/site"
python3 -m zipfile -e "$work"/av-*.whl "$work/site"
tar -C "$work/site" -cf - . | xz -9 -T2 >.devcarry/av.tar.xz
tar -C "$SHARED" -cf - weights media/content media/styles media/video media/README.md media/LICENSES.md README.md |
    xz -6 -T2 >.devcarry/shared.tar.xz
ls -l .devcarry
