"""One 3x3 conv + ReLU at a time: oneDNN's direct conv against the Winograd F(4x4, 3x3) form
(`realtime.winograd`), eager and compiled, alternated in one process; the figures behind
`winograd.MIN_CHANNEL_PRODUCT_RATIO`.

    python benchmarks/winograd_layers.py                      # vgg's layer shapes at 512x512, a few at 720p, cd16x's
    python benchmarks/winograd_layers.py --json layers.json --threads 2

Prints a table (best of `--repeats` frames, two alternated rounds) and optionally writes JSON records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.models import _padded_conv_relu  # noqa: E402
from realtime.runtime import reuse_freed_host_memory  # noqa: E402
from realtime.winograd import WinogradConv  # noqa: E402

# (in, out, height, width): vgg's layers at 512x512 (encoder and decoder), then some at 1280x720, then
# cd16x's at 512x512 and 256x256
SHAPES = ((256, 256, 128, 128), (512, 256, 64, 64), (256, 512, 64, 64), (128, 256, 128, 128),
          (256, 128, 128, 128), (128, 128, 256, 256), (64, 128, 256, 256), (128, 64, 256, 256),
          (64, 64, 512, 512), (256, 256, 180, 320), (128, 128, 90, 160), (64, 64, 180, 320),
          (64, 64, 128, 128), (64, 128, 64, 64), (128, 64, 64, 64), (32, 64, 128, 128), (64, 32, 128, 128),
          (32, 32, 256, 256), (64, 64, 64, 64), (64, 128, 32, 32))


def best_ms(run: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def measure(channels_in: int, channels_out: int, height: int, width: int, repeats: int) -> dict:
    conv = nn.Conv2d(channels_in, channels_out, 3).requires_grad_(False).to(memory_format=torch.channels_last)
    winograd = WinogradConv(conv)
    padded = torch.randn(1, channels_in, height + 2, width + 2).contiguous(memory_format=torch.channels_last)
    variants = {"direct": lambda: _padded_conv_relu(conv, padded),
                "winograd": lambda: _padded_conv_relu(winograd, padded)}
    compiled = {name: torch.compile(lambda x, m=module: torch.relu(m(x)), dynamic=False)
                for name, module in (("direct", conv), ("winograd", winograd))}
    record = {"in": channels_in, "out": channels_out, "size": f"{width}x{height}",
              "ratio": round(channels_in * channels_out / (channels_in + channels_out), 1)}
    for mode, runs in (("eager", variants),
                       ("compiled", {name: (lambda f=f: f(padded)) for name, f in compiled.items()})):
        best = {name: min(best_ms(run, repeats) for _ in range(2)) for name, run in runs.items()}
        record[f"{mode}_direct_ms"] = round(best["direct"], 2)
        record[f"{mode}_winograd_ms"] = round(best["winograd"], 2)
        record[f"{mode}_speedup"] = round(best["direct"] / best["winograd"], 2)
    torch._dynamo.reset()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reuse_freed_host_memory()  # as every Stylizer does: large blocks are otherwise faulted in afresh per call
    records = []
    print(f"{'layer':>24} {'in*out/(in+out)':>15} {'eager direct/wino ms':>22} {'x':>5} "
          f"{'compiled direct/wino ms':>24} {'x':>5}")
    with torch.inference_mode():
        for shape in SHAPES:
            r = measure(*shape, args.repeats)
            records.append(r)
            print(f"{r['in']:>5}->{r['out']:<4} at {r['size']:>9} {r['ratio']:>15} "
                  f"{r['eager_direct_ms']:>10.1f}/{r['eager_winograd_ms']:<11.1f} {r['eager_speedup']:>5.2f} "
                  f"{r['compiled_direct_ms']:>12.1f}/{r['compiled_winograd_ms']:<11.1f} {r['compiled_speedup']:>5.2f}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                                         "records": records}, indent=1))


if __name__ == "__main__":
    main()
