"""Process-level device settings and host<->device transfers: CPU thread count, cuDNN autotuning,
page-locked (pinned) staging memory with non-blocking copies on CUDA."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import os
import platform
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or platform.processor() elsewhere."""
    return _cpuinfo_value("model name") or platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return frozenset((_cpuinfo_value("flags", "Features") or "").split())


def _cpuinfo_value(*keys: str) -> str | None:
    """The value of the first /proc/cpuinfo line that starts with one of `keys`, or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(keys):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def usable_cpus() -> list[int]:
    """CPU ids this process may run on (its affinity mask; all CPUs where the OS has none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_core_count(cpus: list[int] | None = None) -> int:
    """Physical cores among `cpus`: hyper-threads of one core share its matrix units, so convolutions
    gain nothing from a second thread per core. Falls back to the CPU count where topology is hidden."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def cgroup_cpu_limit(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs a container's cgroup v2 quota allows (e.g. 2.5), or None when unlimited or unknown."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def default_cpu_threads() -> int:
    """One inference thread per physical core this process may use, capped by a container CPU quota."""
    threads = physical_core_count()
    limit = cgroup_cpu_limit()
    if limit is not None:
        threads = min(threads, max(1, math.floor(limit)))
    return threads


CUDA_HOST_THREADS = 1
"""torch's CPU threads by default when the networks run on a CUDA GPU, where the host only copies frames to and
from it. With one thread per core (16 on the lent H100 machine) beside the decode and encode threads, `adain video`
at 1280x720 ran 2.0-2.6x slower than with 1 thread, in every round of two A/B runs (benchmarks/RESULTS.md, GPU
"Runs 6-9"); the likely cause, torch's OpenMP pool waking for each frame's copies, was not profiled."""


def configure_cpu_threads(threads: int | None = None, device_type: str = "cpu") -> int | None:
    """Set torch's intra-op thread count: `threads` if given, else OMP_NUM_THREADS if the user set it, else
    one per physical core for networks on the CPU and CUDA_HOST_THREADS for networks on a CUDA GPU.
    Returns the count in effect, or None where it was left as torch has it (other devices, no `threads`)."""
    if threads is None and device_type not in ("cpu", "cuda"):
        return None
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    if threads is not None:
        wanted = threads
    else:
        wanted = CUDA_HOST_THREADS if device_type == "cuda" else default_cpu_threads()
    if wanted < 1:
        raise ValueError(f"thread count must be >= 1, got {wanted}")
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
        log.debug("torch uses %d CPU threads", wanted)
    return wanted


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_KEEP_BYTES = 1 << 30


def reuse_freed_host_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 1 GiB for reuse instead of unmapping them.

    Every frame allocates the same activation sizes; blocks above glibc's 32 MiB mmap limit are
    otherwise returned to the OS on free and fault in afresh, page by page, on the next frame
    (cd16x at 1920x1080 in bf16: 107k page faults and 411 -> 258 ms per frame on the 2-core test
    machine). The cost: the process keeps its peak memory. Returns False where libc is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES))


def configure_cuda() -> None:
    """Let cuDNN time its convolution algorithms once per input shape and keep the fastest:
    video frames have one fixed size, so the search pays for itself after the first frame."""
    torch.backends.cudnn.benchmark = True


def available_memory(device: torch.device) -> int | None:
    """Bytes that one more frame may use on `device`: on a GPU, see `cuda_headroom`; on a CPU, the host's
    MemAvailable (capped by a cgroup memory limit); None where it cannot be known."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index  # the cap wants an index
        free, total = torch.cuda.mem_get_info(index)
        cap = int(torch.cuda.get_per_process_memory_fraction(index) * total)
        return cuda_headroom(free, torch.cuda.memory_reserved(index), torch.cuda.memory_allocated(index), cap)
    if device.type == "mps":
        return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    return _host_available_memory()


def cuda_headroom(free: int, reserved: int, allocated: int, cap: int) -> int:
    """Bytes new tensors may take on a GPU: free device memory plus the caching allocator's unused cache,
    but no more than the process's cap (`torch.cuda.set_per_process_memory_fraction` of the total, which
    the allocator enforces on what it reserves) minus what is allocated. A cap set to a smaller card's
    memory thus makes frames tile as they would on that card."""
    return max(0, min(free + reserved - allocated, cap - allocated))


def _host_available_memory() -> int | None:
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    available = next((int(line.split()[1]) * 1024 for line in meminfo.splitlines()
                      if line.startswith("MemAvailable:")), None)
    try:
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
        if limit != "max" and available is not None:
            available = min(available, int(limit) - int(used))
    except (OSError, ValueError):
        pass
    return available


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device`, so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def upload(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host frames to `device`; on CUDA through page-locked memory with a non-blocking copy, so the
    transfer runs by DMA while the host goes on (the caching host allocator reuses the staging block)."""
    if device.type != "cuda" or frames.device.type == "cuda":
        return frames.to(device)
    staging = frames if frames.is_pinned() else torch.empty(frames.shape, dtype=frames.dtype,
                                                            pin_memory=True).copy_(frames)
    return staging.to(device, non_blocking=True)


def download(frames: torch.Tensor) -> torch.Tensor:
    """Device frames to host memory; from CUDA by one non-blocking copy into page-locked memory and one
    wait for the stream, so no hidden staging copy is made."""
    if frames.device.type != "cuda":
        return frames.cpu()
    host = torch.empty(frames.shape, dtype=frames.dtype, pin_memory=True)
    host.copy_(frames, non_blocking=True)
    torch.cuda.current_stream(frames.device).synchronize()
    return host
