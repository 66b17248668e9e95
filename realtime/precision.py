"""The probes behind `--precision auto`.

Is fp16 safe for a network pair? A probe of every convolution's activations at 1080p and 4K.
fp16 stops at 65504. The encoders see mean-subtracted BGR in [0, 255] and the decoders undo
feature statistics that a style can scale up, so large activations are possible; where a layer
comes near the limit, `precision auto` falls back to bf16 (same range as fp32) or fp32.

Is bf16 faster than fp32 on this CPU? Native bf16 does not guarantee it (`cpu_bf16_speedup`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from . import adain as A
from .files import write_atomically
from .runtime import cpu_flags, cpu_model
from .tiling import decode_tiled, encode_tiled

log = logging.getLogger(__name__)

FP16_MAX = float(torch.finfo(torch.float16).max)
HEADROOM = 8.0
"""A layer is unsafe once its largest activation on the probe exceeds FP16_MAX / HEADROOM: real
frames and styles may drive activations several times beyond a synthetic probe's."""

STYLE_GAIN = 2.0
"""The probe's style has this many times the frame's own feature spread: a strong style."""

PROBE_SIZES = ((1080, 1920), (2160, 3840))
"""The frame sizes checked: 1080p and 4K, where most real-time use happens."""

PROBE_TILE = 64
"""Feature cells per probe tile (512 px): keeps the 4K probe within a small GPU's memory."""


@dataclass(frozen=True)
class ProbeResult:
    """The largest |activation| of the probe, the layer where it occurred, and whether fp16 is safe."""

    peak: float
    layer: str
    size: tuple[int, int]

    @property
    def safe(self) -> bool:
        return math.isfinite(self.peak) and self.peak <= FP16_MAX / HEADROOM


def probe_frame(height: int, width: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A synthetic worst case for activation range (1, 3, H, W) in [0, 1]: saturated colour blocks,
    hard edges and full-range noise, which drive early convolutions hardest."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, height, width, generator=generator)
    rows = torch.arange(height)[:, None] // max(1, height // 8)
    cols = torch.arange(width)[None, :] // max(1, width // 8)
    blocks = torch.stack([(rows + cols) % 2, (rows // 2 + cols) % 2, (rows + cols // 2) % 2]).float()[None]
    stripes = (torch.arange(width) % 2).float().expand(1, 3, height, width)
    choice = torch.randint(0, 3, (1, 1, height, width), generator=generator)
    frame = torch.where(choice == 0, noise, torch.where(choice == 1, blocks, stripes))
    return frame.to(device)


def fp16_probe(encoder: nn.Module, decoder: nn.Module, device: torch.device,
               sizes: tuple[tuple[int, int], ...] = PROBE_SIZES, tile: int = PROBE_TILE) -> ProbeResult:
    """Run fp16 copies of the networks on probe frames of each size (AdaIN to the probe's own statistics
    with the spread scaled by STYLE_GAIN) and report the largest activation of any convolution."""
    encoder16 = copy.deepcopy(encoder).to(device, torch.float16, memory_format=torch.channels_last)
    decoder16 = copy.deepcopy(decoder).to(device, torch.float16, memory_format=torch.channels_last)
    worst = ProbeResult(0.0, "", (0, 0))
    for size in sizes:
        peaks: dict[str, float] = {}
        # no_grad, not inference_mode: the inference-only fast blocks (fused conv+ReLU) bypass the Conv2d
        # modules, and with them the hooks that record the peaks
        with _PeakRecorder(encoder16, "encoder", peaks), _PeakRecorder(decoder16, "decoder", peaks), \
                torch.no_grad():
            frame = probe_frame(*size, device).to(torch.float16).contiguous(memory_format=torch.channels_last)
            feats = encode_tiled(encoder16, frame, tile)
            probe_stats = A.channel_stats(feats)
            style = A.StyleStats(probe_stats.mean, probe_stats.std * STYLE_GAIN)
            decode_tiled(decoder16, A.adain(feats, style), tile)
        layer, peak = max(peaks.items(), key=lambda item: _order(item[1]))
        if _order(peak) > _order(worst.peak):
            worst = ProbeResult(peak, layer, size)
    log.debug("fp16 probe: largest activation %.0f in %s at %dx%d", worst.peak, worst.layer, *worst.size[::-1])
    return worst


def _order(value: float) -> float:
    """Sort NaN above everything: a NaN activation is the worst outcome."""
    return math.inf if math.isnan(value) else value


class _PeakRecorder:
    """Context manager: forward hooks on every conv of `network` that keep each layer's largest |output|
    (NaN where a layer produced NaN)."""

    def __init__(self, network: nn.Module, prefix: str, peaks: dict[str, float]) -> None:
        self.handles = [module.register_forward_hook(self._hook(f"{prefix}.{name}", peaks))
                        for name, module in network.named_modules() if isinstance(module, nn.Conv2d)]

    @staticmethod
    def _hook(name: str, peaks: dict[str, float]) -> Callable:
        def keep_peak(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            peak = float(output.abs().amax())  # amax propagates NaN and inf
            peaks[name] = max(peaks.get(name, 0.0), peak, key=_order)
        return keep_peak

    def __enter__(self) -> "_PeakRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def safe_half_precision(encoder: nn.Module, decoder: nn.Module, device: torch.device,
                        sizes: tuple[tuple[int, int], ...] = PROBE_SIZES, memo: Path | None = None,
                        key: str = "") -> torch.dtype:
    """fp16 where the probe finds it safe at these frame sizes, else bf16 where the device computes it,
    else fp32.

    `memo` is a JSON file of earlier probe results by `key` (the weight files' hashes, the device and the
    torch version): the probe takes seconds on a GPU and its answer only changes with those.
    """
    result = _probe_result(_remembered(memo, key))
    if result is None:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False,
                                        deterministic=torch.backends.cudnn.deterministic,
                                        allow_tf32=torch.backends.cudnn.allow_tf32):
            result = fp16_probe(encoder, decoder, device, sizes)  # tile shapes seen once: no algorithm search
        _remember(memo, key, {"peak": result.peak, "layer": result.layer, "size": list(result.size)})
    if result.safe:
        return torch.float16
    fallback = torch.bfloat16 if _has_bf16(device) else torch.float32
    log.warning("fp16 is unsafe for this model (activation %.3g in %s at %dx%d); using %s", result.peak,
                result.layer, result.size[1], result.size[0], str(fallback).removeprefix("torch."))
    return fallback


def cpu_bf16_speedup(repeats: int = 5, channels: int = 64, side: int = 64) -> float:
    """How many times faster a bf16 3x3 convolution (channels_last, as the networks run) is than fp32 on this
    CPU with torch's current threads: the best of `repeats` interleaved timings of each, tens of milliseconds.

    Native bf16 is not always faster: AMX makes it several times faster, AVX512-BF16 alone about 2x on AMD
    Zen 4, but 0.53x on the project's Xeon (Emerald Rapids) when its hypervisor hides AMX
    (`benchmarks/RESULTS.md`, 2026-11-27)."""
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    frame = torch.rand(1, channels, side, side)
    best = {torch.float32: math.inf, torch.bfloat16: math.inf}
    networks = {dtype: (copy.deepcopy(conv).to(dtype, memory_format=torch.channels_last),
                        frame.to(dtype, memory_format=torch.channels_last)) for dtype in best}
    with torch.inference_mode():
        for network, x in networks.values():
            network(x)  # first call: oneDNN builds its kernel
        for _ in range(repeats):
            for dtype, (network, x) in networks.items():
                start = time.perf_counter()
                network(x)
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.float32] / best[torch.bfloat16]


BF16_PROBE_MEMO = "bf16-probe.json"
"""File in the cache folder where `remembered_bf16_speedup` keeps its answers."""


def remembered_bf16_speedup(memo: Path | None) -> float:
    """`cpu_bf16_speedup`, measured once per CPU (model and flags), thread count and torch version and kept in
    `memo`: a probe disturbed by a moment's load elsewhere could otherwise flip the precision between two runs
    of the same command, and with it their frames."""
    key = f"{cpu_model()} [{' '.join(sorted(cpu_flags()))}] threads={torch.get_num_threads()} torch={torch.__version__}"
    known = _remembered(memo, key)
    if isinstance(known, (int, float)) and math.isfinite(known) and known > 0:
        return float(known)
    speedup = cpu_bf16_speedup(repeats=20)
    _remember(memo, key, speedup)
    return speedup


def _probe_result(found: object) -> ProbeResult | None:
    try:
        return ProbeResult(float(found["peak"]), str(found["layer"]), tuple(found["size"])) if found else None
    except (ValueError, KeyError, TypeError):
        return None  # a damaged entry: probe again


def _has_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def _remembered(memo: Path | None, key: str) -> object:
    """The JSON value kept under `key` in `memo`, or None (no memo yet, or an unreadable one: probe again)."""
    try:
        return json.loads(memo.read_text()).get(key) if memo else None
    except (OSError, ValueError, AttributeError):
        return None


def _remember(memo: Path | None, key: str, value: object) -> None:
    if memo is None:
        return
    try:
        known = json.loads(memo.read_text()) if memo.exists() else {}
        known[key] = value
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(memo, lambda out: out.write(json.dumps(known, indent=1)), mode="w")
    except (OSError, ValueError, TypeError) as exc:
        log.debug("probe result not remembered in %s (%s)", memo, exc)
