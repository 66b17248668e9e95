"""The measurements: for each device x model x frame size x precision, model-only fps with latency
percentiles, a stage breakdown and peak memory; the naive baseline and the end-to-end pipeline in the
same run; every figure also as achieved GFLOP/s against the dense-matmul roofline measured alongside."""

from __future__ import annotations

import gc
import logging
import math
import multiprocessing
import re
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .. import adain as A
from ..engine import PRECISIONS, PreparedStyle, Stylizer, select_device
from ..errors import UserError
from ..frame_workers import FrameWorkers
from ..images import (frames_to_tensor, inference_size, pad_to_multiple, padded_size, read_image,
                      resize_frames, resize_to, tensor_to_frames)
from ..models import build_network
from ..runtime import configure_cpu_threads, download, synchronize, upload
from ..weights import WeightStore
from .baseline import NaiveLoop
from .machine import PeakMemory, environment, matmul_gflops

log = logging.getLogger(__name__)

NAMED_SIZES = {"256": (256, 256), "512": (512, 512), "720p": (720, 1280), "1080p": (1080, 1920),
               "4k": (2160, 3840)}
"""Size words for --sizes, as (height, width); WxH and a single number (a square) work too."""

MODES = ("model", "end_to_end", "baseline")
MIN_ITERATIONS = 3


def parse_size(text: str) -> tuple[int, int]:
    """'720p', '4k', '512' (square) or 'WIDTHxHEIGHT' -> (height, width)."""
    word = text.strip().lower()
    if word in NAMED_SIZES:
        return NAMED_SIZES[word]
    if match := re.fullmatch(r"(\d+)x(\d+)", word):
        width, height = int(match[1]), int(match[2])
    elif word.isdigit():
        width = height = int(word)
    else:
        raise UserError(f"unknown frame size {text!r}; use {', '.join(NAMED_SIZES)} or WIDTHxHEIGHT")
    if min(width, height) < 16:
        raise UserError(f"frame size {text!r} is too small; use at least 16x16")
    return height, width


def size_label(height: int, width: int) -> str:
    return f"{width}x{height}"


@dataclass(frozen=True)
class BenchSettings:
    """What to measure and how long. Each measurement runs `iters` timed frames after `warmup` frames,
    stopping early after `max_seconds` (but never below three frames)."""

    models: tuple[str, ...] = ("vgg", "cd16x")
    sizes: tuple[tuple[int, int], ...] = tuple(NAMED_SIZES.values())
    precisions: tuple[str, ...] = ("auto",)
    devices: tuple[str, ...] = ("auto",)
    modes: tuple[str, ...] = MODES
    compile: bool = False
    iters: int = 30
    warmup: int = 3
    max_seconds: float = 10.0
    threads: int | None = None
    frame_workers: int | None = None
    tile: int | None = None
    style: Path | None = None
    stages: bool = True
    clip_frames: int = 60
    clip: Path | None = None  # end_to_end footage; None: a synthetic panning scene
    encoder_preset: str | None = None
    content_size: int = 0  # the lower-resolution mode: networks at this shorter side, rows reported apart

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.modes if mode not in MODES]
        if unknown:
            raise UserError(f"unknown bench mode {unknown[0]!r}; choose from {', '.join(MODES)}")
        for precision in self.precisions:
            if precision != "auto" and precision not in PRECISIONS:
                raise UserError(f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}")
        if self.iters < 1 or self.warmup < 0 or not 0 < self.max_seconds < math.inf:
            raise UserError("--iters must be >= 1, --warmup >= 0 and --max-seconds > 0")
        if self.content_size < 0:
            raise UserError("--content-size must be >= 0")


@dataclass
class BenchRecord:
    """One measured configuration; `to_json` gives the documented JSON schema. `inference_size` is the size
    the networks ran at: `size` itself, except in the lower-resolution mode (--content-size), whose rows
    count the FLOPs done at that size and have no speed-up over the full-resolution baseline."""

    model: str
    size: str
    inference_size: str
    device: str
    precision: str
    mode: str
    fps: float
    latency_ms_p50: float
    latency_ms_p95: float
    peak_mem_mb: float
    gflop_per_frame: float
    achieved_gflops: float
    roofline_gflops: float
    pct_of_roofline: float
    speedup_vs_baseline: float | None
    compiled: bool
    frames_in_flight: int
    frames: int
    warmup_s: float
    stages_ms: dict[str, float] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    clip: str | None = None  # end_to_end rows: the footage's file name, or "synthetic"

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def size_shown(self) -> str:
        """The size for tables: with the networks' size where the lower-resolution mode ran them smaller."""
        return self.size if self.inference_size == self.size else f"{self.size} at {self.inference_size}"


@dataclass(frozen=True)
class Timing:
    """What one measurement found: throughput, latency percentiles, frames timed, warm-up, peak memory."""

    fps: float
    p50_ms: float
    p95_ms: float
    frames: int
    warmup_s: float
    peak_mem_mb: float
    stages_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_frames(cls, latencies_s: list[float], wall_s: float, warmup_s: float, peak_mem_mb: float) -> "Timing":
        """From per-frame latencies and the wall time they took (fps = frames / wall time)."""
        ms = np.asarray(latencies_s) * 1000
        return cls(len(ms) / wall_s, float(np.percentile(ms, 50)), float(np.percentile(ms, 95)),
                   len(ms), warmup_s, peak_mem_mb)


def time_frames(run_frame: Callable[[], object], device: torch.device, settings: BenchSettings,
                in_flight: int = 1, threads: int | None = None) -> Timing:
    """Warm up (`warmup` frames; past two, fewer once they take half of `max_seconds`: the first compiles,
    the second captures a CUDA graph), then time frames until `iters` or `max_seconds`; peak memory covers
    both. With `in_flight` > 1 that many frames run at once on worker threads sharing `threads` (as
    `adain video` runs them on a CPU): latency is then each frame's own, fps the frames over the wall time."""

    def frame_done() -> None:
        run_frame()
        synchronize(device)

    workers = FrameWorkers(frame_done, in_flight, threads)
    try:
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            for index in range(settings.warmup):
                for future in [workers.submit() for _ in range(in_flight)]:
                    future.result()
                if index >= 1 and time.perf_counter() - start > settings.max_seconds / 2:
                    break
            warmup_s = time.perf_counter() - start
            latencies: list[float] = []
            pending: deque[tuple[float, Future]] = deque()
            began = time.perf_counter()
            while len(latencies) < settings.iters:
                while len(pending) < in_flight and len(latencies) + len(pending) < settings.iters:
                    pending.append((time.perf_counter(), workers.submit()))
                submitted, future = pending.popleft()
                future.result()
                latencies.append(time.perf_counter() - submitted)
                if len(latencies) >= MIN_ITERATIONS and time.perf_counter() - began > settings.max_seconds:
                    break
            wall_s = time.perf_counter() - began
            for _, future in pending:  # started but not counted: finished before the next measurement
                future.result()
    finally:
        workers.close()
    return Timing.of_frames(latencies, wall_s, warmup_s, memory.peak_mb)


@lru_cache(maxsize=None)
def frame_gflop(architecture: str, height: int, width: int) -> float:
    """GFLOP per frame of the model's encoder and decoder at this size (padded as the engine pads it),
    counted by torch.utils.flop_counter on the reference networks (meta tensors, no work)."""
    padded = padded_size(height, width)
    encoder = build_network("encoder", architecture).to("meta")
    decoder = build_network("decoder", architecture).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        decoder(encoder(torch.empty(1, 3, *padded, device="meta")))
    return counter.get_total_flops() / 1e9


def synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB frame with photo-like structure (smooth shapes plus grain): timing does not
    depend on content, but fp16/bf16 arithmetic on degenerate (constant) frames could."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    smooth = resize_to(coarse, width, height).astype(np.int16)
    grain = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def style_image(settings: BenchSettings) -> np.ndarray:
    return read_image(settings.style).rgb if settings.style else synthetic_frame(512, 512, seed=1)


EndToEnd = Callable[[Stylizer, np.ndarray, int, int, BenchSettings, float | None], Timing]
"""(stylizer, style RGB, height, width, settings, model-only fps if known) -> Timing of the whole pipeline."""


def run_bench(settings: BenchSettings, on_record: Callable[[BenchRecord], None] = lambda _: None,
              end_to_end: EndToEnd | None = None) -> list[BenchRecord]:
    """Measure every configuration; `on_record` sees each record as soon as it exists.

    `end_to_end` measures decode + stylize + encode through the video pipeline; without it the
    end_to_end mode is skipped.
    """
    records: list[BenchRecord] = []
    store = WeightStore()
    style_rgb = style_image(settings)
    for device_name in settings.devices:
        device = select_device(device_name)
        configure_cpu_threads(settings.threads, device.type)
        env = environment(device)
        log.info("benchmarking on %s (%s), %d threads", device, env["gpu"] or env["cpu"], env["threads"])
        for model in settings.models:
            architecture = store.registry.model(model).architecture
            stylizers: dict[str, tuple[Stylizer, PreparedStyle]] = {}
            for height, width in settings.sizes:
                cell = _Cell(model, architecture, height, width, device, env, settings)
                if "baseline" in settings.modes:
                    cell.add(records, on_record, _measure_baseline(cell, style_rgb))
                for precision in settings.precisions:
                    if precision not in stylizers:
                        stylizer = Stylizer(model, str(device), precision, compile=settings.compile,
                                            tile=settings.tile, threads=settings.threads,
                                            frame_workers=settings.frame_workers, store=store,
                                            content_size=settings.content_size)
                        stylizers[precision] = (stylizer, stylizer.prepare(style_rgb))
                    stylizer, prepared = stylizers[precision]
                    model_fps = None
                    if "model" in settings.modes:
                        record = _measure_model(cell, stylizer, prepared)
                        model_fps = record.fps
                        cell.add(records, on_record, record)
                    if "end_to_end" in settings.modes and end_to_end is not None:
                        timing = end_to_end(stylizer, style_rgb, height, width, settings, model_fps)
                        record = cell.record("end_to_end", _precision_name(stylizer.dtype), timing, stylizer.compiled,
                                             stylizer.frames_in_flight(height, width))
                        record.clip = settings.clip.name if settings.clip is not None else "synthetic"
                        cell.add(records, on_record, record)
            del stylizers
            gc.collect()
    return records


@dataclass
class _Cell:
    """One model at one size on one device: shared FLOP count, roofline and baseline speed."""

    model: str
    architecture: str
    height: int
    width: int
    device: torch.device
    env: dict
    settings: BenchSettings
    baseline_fps: float | None = None
    rooflines: dict[torch.dtype, float] = field(default_factory=dict)

    def roofline(self, dtype: torch.dtype) -> float:
        """Matmul GFLOP/s in this dtype, measured next to this cell's frames (the machine drifts)."""
        if dtype not in self.rooflines:
            self.rooflines[dtype] = matmul_gflops(self.device, dtype)
        return self.rooflines[dtype]

    def record(self, mode: str, precision: str, timing: Timing, compiled: bool, in_flight: int = 1) -> BenchRecord:
        """The record of one measurement; the baseline always runs at full resolution."""
        full_size = (self.height, self.width)
        networks_at = full_size if mode == "baseline" else inference_size(*full_size, self.settings.content_size)
        gflop = frame_gflop(self.architecture, *networks_at)
        roofline = self.roofline(PRECISIONS[precision])
        comparable = self.baseline_fps and mode != "baseline" and networks_at == full_size
        speedup = timing.fps / self.baseline_fps if comparable else None
        return BenchRecord(
            model=self.model, size=size_label(*full_size), inference_size=size_label(*networks_at),
            device=str(self.device),
            precision=precision, mode=mode, fps=round(timing.fps, 3), latency_ms_p50=round(timing.p50_ms, 3),
            latency_ms_p95=round(timing.p95_ms, 3), peak_mem_mb=round(timing.peak_mem_mb, 1),
            gflop_per_frame=round(gflop, 3), achieved_gflops=round(gflop * timing.fps, 1),
            roofline_gflops=round(roofline, 1), pct_of_roofline=round(100 * gflop * timing.fps / roofline, 1),
            speedup_vs_baseline=round(speedup, 2) if speedup else None, compiled=compiled,
            frames_in_flight=in_flight, frames=timing.frames, warmup_s=round(timing.warmup_s, 2), stages_ms=timing.stages_ms,
            environment={**self.env, "threads": torch.get_num_threads()})

    def add(self, records: list[BenchRecord], on_record: Callable[[BenchRecord], None], record: BenchRecord) -> None:
        if record.mode == "baseline":
            self.baseline_fps = record.fps
        records.append(record)
        on_record(record)


def _precision_name(dtype: torch.dtype) -> str:
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def _measure_baseline(cell: _Cell, style_rgb: np.ndarray) -> BenchRecord:
    """The naive loop, timed in a fresh process of its own as a peer's script runs. In this process the
    engine's settings would change it: glibc's kept freed memory (`runtime.reuse_freed_host_memory`, set by
    every Stylizer) saves the loop its page faults (vgg 512x512 fp32 on the 2-core Xeon: 0.40 -> 0.57 fps),
    and the engine ran 1.2x slower after the loop had run in its process (1.58 against 1.92 fps)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        timing = pool.submit(_time_naive_loop, cell.model, str(cell.device), cell.height, cell.width,
                             resize_to(style_rgb, cell.width, cell.height), cell.settings).result()
    return cell.record("baseline", "fp32", timing, compiled=False)


def _time_naive_loop(model: str, device_name: str, height: int, width: int, style_rgb: np.ndarray,
                     settings: BenchSettings) -> Timing:
    """The baseline's measurement in the child process: peers' loop with torch's CPU threads as theirs."""
    configure_cpu_threads(settings.threads)
    device = torch.device(device_name)
    loop = NaiveLoop(model, device, style_rgb, WeightStore())
    frame = synthetic_frame(height, width)
    return time_frames(lambda: loop.stylize(frame), device, settings)


def _measure_model(cell: _Cell, stylizer: Stylizer, prepared: PreparedStyle) -> BenchRecord:
    """Model-only: a uint8 frame already on the device in, a uint8 frame on the device out
    (conversions, AdaIN and both networks; transfers appear in the stage breakdown), with as many frames in
    flight as `adain video` would keep at this size."""
    frame_host = torch.from_numpy(synthetic_frame(cell.height, cell.width))
    with torch.inference_mode():  # an inference tensor, as the pipeline's frames are: the same compiled graph
        frame = upload(frame_host, cell.device)
    in_flight = stylizer.frames_in_flight(cell.height, cell.width)
    timing = time_frames(lambda: stylizer.stylize_uint8(frame, prepared), cell.device, cell.settings,
                         in_flight, stylizer.threads)
    if cell.settings.stages:
        timing = replace(timing, stages_ms=_stage_breakdown(stylizer, prepared, frame_host, cell.settings))
    return cell.record("model", _precision_name(stylizer.dtype), timing, stylizer.compiled, in_flight)


@torch.inference_mode()
def _stage_breakdown(stylizer: Stylizer, prepared: PreparedStyle, frame_host: torch.Tensor,
                     settings: BenchSettings) -> dict[str, float]:
    """Median ms of each stage run on its own (upload, uint8 -> float, encoder, AdaIN, decoder,
    float -> uint8, download; with --content-size also the shrinking and enlarging). With --compile the
    networks are compiled on their own here, so the stages' sum exceeds the fused whole a little."""
    device = stylizer.device
    encoder, decoder = stylizer.networks_alone()
    alpha = torch.tensor(prepared.controls.alpha, device=device)
    frame = upload(frame_host, device).unsqueeze(0)
    full_size = tuple(frame.shape[1:3])
    small_size = inference_size(*full_size, stylizer.content_size)
    small = resize_frames(frame, small_size)
    x, _ = pad_to_multiple(frames_to_tensor(small, stylizer.dtype))
    feats = encoder(x)
    t = A.adain(feats, prepared.mixed, alpha)
    out = decoder(t)
    out_frames = resize_frames(tensor_to_frames(out), full_size)
    stages = {"upload": lambda: upload(frame_host, device),
              "to_float": lambda: pad_to_multiple(frames_to_tensor(small, stylizer.dtype)),
              "encoder": lambda: encoder(x), "adain": lambda: A.adain(feats, prepared.mixed, alpha),
              "decoder": lambda: decoder(t), "to_uint8": lambda: tensor_to_frames(out),
              "download": lambda: download(out_frames)}
    if small_size != full_size:
        stages["resize"] = lambda: resize_frames(resize_frames(frame, small_size), full_size)
    quick = BenchSettings(iters=5, warmup=1, max_seconds=max(1.0, settings.max_seconds / 4))
    return {name: round(time_frames(run, device, quick).p50_ms, 3) for name, run in stages.items()}
