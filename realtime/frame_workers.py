"""Frames in flight: several frames stylized at once, each on its own worker thread with its share of the
CPU threads, their results taken in order.

Why: one frame on all the cores waits at a barrier after every operation, so a decode or encode thread
that takes a core for a moment stalls the whole frame, and small frames leave cores idle between small
operations. Two frames on one core each avoid both, where a frame's activations are small enough that
two frames do not fight over caches and memory (see AUTO_MAX_ACTIVATION_BYTES; figures in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

import torch

from .runtime import configure_cpu_threads

Result = TypeVar("Result")

AUTO_MAX_ACTIVATION_BYTES = 30 * 2**20
"""Largest full-resolution activation (one frame's widest full-resolution layer output) for which
`auto_frames_in_flight` asks for two frames at once. Measured on the 2-core test machine in bf16: cd16x up to
1280x720 (29.5 MB) and vgg at 256x256 (8.4 MB) gained, vgg at 640x360 (29.5 MB) neither gained nor lost,
vgg at 512x512 (33.5 MB) gained nothing (0.91-1.03x) and at 1280x720 (118 MB) lost a quarter end to end: two
frames of large activations contend for caches and memory instead of filling idle cores."""


def auto_frames_in_flight(device: torch.device, threads: int | None, activation_bytes: int) -> int:
    """Two frames at once on a CPU with two or more inference threads where one frame's full-resolution
    activation takes at most AUTO_MAX_ACTIVATION_BYTES, else one. GPUs run one frame at a time: their work
    is already queued asynchronously."""
    if device.type != "cpu" or threads is None or threads < 2 or activation_bytes > AUTO_MAX_ACTIVATION_BYTES:
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
