"""What the benchmark runs on: the environment record, the dense-matmul roofline, and peak memory."""

from __future__ import annotations

import os
import platform
import re
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..runtime import cpu_flags, cpu_model, synchronize

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd")
"""CPU features that decide which kernels torch can use; the environment record lists those present."""

ROOFLINE_SIZE = 2048


def environment(device: torch.device) -> dict:
    """CPU model and relevant flags, GPU name, versions and thread count: enough to compare runs."""
    env = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in cpu_flags()],
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "os": platform.platform(),
        "device": str(device),
        "gpu": None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = nvidia_driver()
    return env


def nvidia_driver(version_file: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA driver version from its kernel module's banner, e.g. 'NVRM version: NVIDIA UNIX Open Kernel
    Module for x86_64  580.159.04  Release Build ...' -> '580.159.04' (the word after 'Module' varies)."""
    try:
        banner = version_file.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    found = re.search(r"\b(\d+\.\d+(?:\.\d+)?)\b", banner.split("Module", 1)[-1])
    return found[1] if found else None


def matmul_gflops(device: torch.device, dtype: torch.dtype, size: int = ROOFLINE_SIZE, repeats: int = 10) -> float:
    """GFLOP/s of a dense size x size matmul (median of `repeats` after a warm-up), with the current threads:
    the practical peak that convolutions are compared against."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    times = []
    for index in range(repeats + 2):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        if index >= 2:
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times) / 1e9


class PeakMemory:
    """Context manager for a peak-memory reading: CUDA's max-allocated statistic on a GPU; elsewhere the
    process's resident set size, sampled by a thread every `interval_s` (short spikes between two
    samples can be missed; frames allocate the same buffers every time, so repeats catch the peak)."""

    def __init__(self, device: torch.device, interval_s: float = 0.002) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _resident_bytes() is not None:
            self._peak_bytes = _resident_bytes()
            self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak_bytes = max(self._peak_bytes, _resident_bytes() or 0)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._peak_bytes, _resident_bytes() or 0) / 2 ** 20


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes() -> int | None:
    """The process's resident set size now (Linux /proc), or None elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None
