"""Frames in flight: several frames stylized at once, each on its own worker thread with its share of the
CPU threads, their results taken in order.

Why: one frame on all the cores waits at a barrier after every operation, so a decode or encode thread
that takes a core for a moment stalls the whole frame, and small frames leave cores idle between small
operations. Two frames on one core each avoid both. On the 2-core test machine (benchmarks/RESULTS.md)
this made cd16x `adain video` 1.08-1.19x faster at 640x360 and the model alone 1.1-1.3x faster at
256x256; at 512x512 and up the model alone gained nothing, since one frame already keeps the cores busy.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

import torch

from .runtime import configure_cpu_threads

Result = TypeVar("Result")

AUTO_MAX_PIXELS = 1280 * 720
"""Largest frame for which `auto_frames_in_flight` asks for two frames at once (measured up to 1280x720)."""


def auto_frames_in_flight(device: torch.device, threads: int | None, height: int, width: int) -> int:
    """Two frames at once on a CPU with two or more inference threads and frames of at most 1280x720 pixels,
    else one. GPUs run one frame at a time: their work is already queued asynchronously."""
    if device.type != "cpu" or threads is None or threads < 2 or height * width > AUTO_MAX_PIXELS:
        return 1
    return 2


class FrameWorkers(Generic[Result]):
    """Runs `work` on up to `count` frames at once; each worker thread gets `threads // count` CPU threads.

    With `count` 1 the work runs in the calling thread when it is submitted (no thread, no extra latency).
    `close` waits for the frames in flight and stops the threads.
    """

    def __init__(self, work: Callable[..., Result], count: int = 1, threads: int | None = None) -> None:
        if count < 1:
            raise ValueError(f"frames in flight must be >= 1, got {count}")
        self.count = count
        self._work = work
        self._pool: ThreadPoolExecutor | None = None
        if count > 1:
            self._pool = ThreadPoolExecutor(count, thread_name_prefix="stylize", initializer=configure_cpu_threads,
                                            initargs=(max(1, (threads or count) // count),))

    def submit(self, *args: object) -> Future[tuple[Result, float]]:
        """Start one frame; the future gives the result and the seconds its worker spent on it."""
        if self._pool is not None:
            return self._pool.submit(self._timed, *args)
        done: Future[tuple[Result, float]] = Future()
        try:
            done.set_result(self._timed(*args))
        except Exception as exc:  # delivered by result(), as a worker's would be
            done.set_exception(exc)
        return done

    def _timed(self, *args: object) -> tuple[Result, float]:
        start = time.perf_counter()
        result = self._work(*args)
        return result, time.perf_counter() - start

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
