"""Run `adain bench` on a shared CPU machine in chunks (one model at one size each) and merge the results.

Two-thread CPU inference loses most of its speed whenever another process takes a core, so each chunk
starts only when the CPU has been idle for a few seconds, and is run again (up to --retries times) when
other processes used more than --max-foreign of a core while it ran. Each chunk holds the baseline and
the engine rows of its model and size, so every speed-up ratio comes from one run (the baseline timed in
a spawned child process).

    python benchmarks/run_cpu.py --out benchmarks/cpu-eager
    python benchmarks/run_cpu.py --out benchmarks/cpu-compile --compile --sizes 256,512,720p
    python benchmarks/run_cpu.py ... --pause-pid-file /work/train.pid   # SIGSTOP a background job per chunk

Writes OUT.json (all records) and OUT.md (the tables), plus OUT.log (one line per chunk attempt).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime.bench import report  # noqa: E402
from realtime.bench.runner import BenchRecord  # noqa: E402


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_until_idle(threshold: float = 0.07, window_s: float = 2.0, timeout_s: float = 180.0) -> float:
    """Wait (at most `timeout_s`) until the busy share of all CPUs over `window_s` is below `threshold`;
    returns the last share seen (a chunk that starts busy is caught by its foreign-load check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy0, total0 = cpu_jiffies()
        time.sleep(window_s)
        busy1, total1 = cpu_jiffies()
        share = (busy1 - busy0) / max(1, total1 - total0)
        if share < threshold or time.monotonic() > deadline:
            return share


def run_chunk(bench_args: list[str], pause_pid: int | None) -> tuple[list[dict], float, float]:
    """Run one `adain bench`; returns its records, its wall time and the foreign CPU load (in cores)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "chunk.json"
        if pause_pid:
            os.kill(pause_pid, signal.SIGSTOP)
        try:
            wait_until_idle()
            busy0, _ = cpu_jiffies()
            start = time.monotonic()
            child = subprocess.Popen([sys.executable, "-m", "cli", "-q", "bench", *bench_args, "--json", str(out)],
                                     cwd=ROOT)
            _, status, usage = os.wait4(child.pid, 0)
            elapsed = time.monotonic() - start
            busy1, _ = cpu_jiffies()
        finally:
            if pause_pid:
                os.kill(pause_pid, signal.SIGCONT)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"adain bench {' '.join(bench_args)} failed")
        ticks = os.sysconf("SC_CLK_TCK")
        foreign = ((busy1 - busy0) / ticks - (usage.ru_utime + usage.ru_stime)) / elapsed
        return json.loads(out.read_text()), elapsed, foreign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    parser.add_argument("--models", default="vgg,cd16x")
    parser.add_argument("--sizes", default="256,512,720p,1080p,4k")
    parser.add_argument("--precision", default="auto", help="passed to adain bench for every chunk")
    parser.add_argument("--fp32-sizes", default="", help="sizes where fp32 rows are added to --precision")
    parser.add_argument("--modes", default="baseline,model,end_to_end")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--encoder-preset", help="passed to adain bench (end_to_end encoder speed)")
    parser.add_argument("--max-foreign", type=float, default=0.05, help="foreign load (cores) that voids a chunk")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--pause-pid-file", type=Path, help="SIGSTOP this process during each chunk")
    args = parser.parse_args()
    pause_pid = int(args.pause_pid_file.read_text()) if args.pause_pid_file else None
    records: list[dict] = []
    log_lines = []
    for model in args.models.split(","):
        for size in args.sizes.split(","):
            precision = args.precision + (",fp32" if size in args.fp32_sizes.split(",") else "")
            chunk = ["--models", model, "--sizes", size, "--precision", precision, "--modes", args.modes]
            chunk += ["--compile"] if args.compile else []
            chunk += ["--encoder-preset", args.encoder_preset] if args.encoder_preset else []
            best: tuple[float, list[dict]] | None = None
            for attempt in range(1, args.retries + 1):
                found, elapsed, foreign = run_chunk(chunk, pause_pid)
                line = f"{model} {size} attempt {attempt}: {elapsed:.0f} s, foreign load {foreign:.2f} cores"
                print(line, flush=True)
                log_lines.append(line)
                if best is None or foreign < best[0]:
                    best = (foreign, found)
                if foreign <= args.max_foreign:
                    break
            records += best[1]
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=2) + "\n")
    args.out.with_suffix(".log").write_text("\n".join(log_lines) + "\n")
    args.out.with_suffix(".md").write_text(report.markdown([BenchRecord(**r) for r in records]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
