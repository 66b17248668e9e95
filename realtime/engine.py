"""Device and precision choice, and the `Stylizer`: encoder -> AdaIN -> decoder on frames.

The per-frame path does only per-frame work: style statistics come prepared (see `prepare`),
a uint8 frame is uploaded once and converted to float on the device, and the result is
converted back to uint8 on the device before it is downloaded.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import adain as A
from .errors import UserError
from .fastpath import (CudaGraphRunner, FramePath, compile_module, fold_colour_conv,
                       fold_upsampling, pair_thin_convs, winograd_convs)
from .frame_workers import auto_frames_in_flight
from .images import (frames_to_tensor, inference_size, pad_to_multiple, padded_size, resize_frames,
                     resize_images, tensor_to_frames)
from .models import build_network
from .precision import BF16_PROBE_MEMO, remembered_bf16_speedup, safe_half_precision
from .runtime import (available_memory, configure_cpu_threads, configure_cuda, cpu_flags, download,
                      reuse_freed_host_memory, synchronize, upload)
from .styles import StyleBank, StyleImage, StyleSource, style_name
from .tiling import MIN_TILE, STRIDE, auto_tile_size, decode_tiled, encode_tiled
from .weights import WeightStore, sha256_of, user_cache_dir

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRESERVE_COLOR = ("none", "histogram", "luminance")
_COLOR_DRIFT = 0.02  # content colour moments may drift this much before a histogram-matched style is redone
_ACTIVATION_COPIES = 4  # full-resolution activations alive at once in a conv layer (input, padded, output, ReLU)
FOLD_UPSAMPLING_UP_TO: Mapping[str, int | None] = MappingProxyType({"cpu": None, "cuda": None})
"""Per device type, the widest decoder upsampling block run at the low resolution (`fold_upsampling`;
None: all of them), as measured (`benchmarks/gpu_probe.py --fold`): every block on CPUs (1.09-1.15x on the
2-core test machine) and on CUDA (H100, fp16, eager, since the phases go straight into the padded buffer:
vgg 1.08-1.24x, cd16x 1.19-1.27x from 720p to 4K). MPS is unmeasured and keeps the blocks."""
WINOGRAD: Mapping[str, frozenset[torch.dtype]] = MappingProxyType({"cpu": frozenset({torch.float32})})
"""Per device type, the precisions in which the wide 3x3 convs run in the Winograd form
(`fastpath.winograd_convs`, a quarter of their multiply-adds): fp32 on CPUs (vgg 512x512 on the 2-core Xeon
without AMX, benchmarks/RESULTS.md). Not bf16/fp16, whose rounding in the transforms shows; not on GPUs,
where cuDNN picks its own algorithms, Winograd among them."""

COLUMN_PAIRS: Mapping[str, frozenset[torch.dtype]] = MappingProxyType({"cpu": frozenset({torch.float32})})
"""Per device type, the precisions in which a decoder's last conv (to RGB) runs on column pairs
(`fastpath.pair_thin_convs`): fp32 on CPUs, measured on the 2-core Xeon without AMX (benchmarks/RESULTS.md).
bf16 gained as much there, but AMX CPUs, where `--precision auto` takes bf16, are unmeasured; so are GPUs."""


def select_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA, then Apple MPS, then the CPU; an explicit device that is absent is a UserError."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UserError(f"--device cuda: no CUDA device is available (torch {torch.__version__}, {build}); "
                        "use --device cpu")
    if name == "mps" and not mps:
        raise UserError("--device mps: Apple MPS is not available on this machine; use --device cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The accelerator's product name (e.g. 'NVIDIA H100 80GB HBM3'), or the device type."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX), read from its flags at run time."""
    return not cpu_flags().isdisjoint({"avx512_bf16", "amx_bf16"})


def select_precision(name: str, device: torch.device,
                     bf16_speedup: Callable[[], float] | None = None) -> torch.dtype:
    """'auto': fp16 on CUDA and MPS; on a CPU, bf16 where it has native bf16 and a quick probe
    (`bf16_speedup`; default: `remembered_bf16_speedup` in the user cache) finds bf16 convolutions faster
    than fp32 there, fp32 otherwise."""
    if name == "auto":
        if device.type in ("cuda", "mps"):
            return torch.float16
        if not cpu_has_native_bf16():
            return torch.float32
        speedup = bf16_speedup() if bf16_speedup else remembered_bf16_speedup(user_cache_dir() / BF16_PROBE_MEMO)
        chosen = torch.bfloat16 if speedup > 1.0 else torch.float32
        log.info("precision auto: %s (this CPU's native bf16 convolutions run at %.2fx fp32 speed)",
                 str(chosen).removeprefix("torch."), speedup)
        return chosen
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose one of auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[name]


@dataclass(frozen=True)
class StyleControls:
    """The paper's user controls.

    alpha: content-style trade-off in [0, 1]. weights: interpolation weights, one per style.
    preserve_color: 'none', 'histogram' (recolour the style to the content's colour mean and
    covariance before encoding) or 'luminance' (stylize luminance only, keep the content's chroma).
    mask: (H, W) float in [0, 1]; the first style inside (white), the second style outside, or
    the unchanged content outside when only one style is given.
    """

    alpha: float = 1.0
    weights: tuple[float, ...] | None = None
    preserve_color: str = "none"
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"alpha must lie in [0, 1], got {self.alpha}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise UserError(f"unknown colour preservation {self.preserve_color!r}; choose one of "
                            f"{', '.join(PRESERVE_COLOR)}")


@dataclass(frozen=True)
class PreparedStyle:
    """Everything per-style that the per-frame path needs, already on the device."""

    names: tuple[str, ...]
    stats: tuple[A.StyleStats, ...]
    mixed: A.StyleStats
    controls: StyleControls
    images: tuple[StyleImage, ...] = ()  # kept only for histogram colour preservation
    mask: torch.Tensor | None = None  # (1, 1, H, W) float32 on the device

    @property
    def label(self) -> str:
        return "+".join(self.names)


@dataclass(frozen=True)
class ModelInfo:
    """Which networks a Stylizer runs, for logs, file names and the HUD."""

    name: str
    architecture: str
    encoder_path: Path
    decoder_path: Path


class Stylizer:
    """Stylizes RGB uint8 frames (numpy HxWx3, or torch uint8 (N)HWC / float NCHW batches).

    >>> stylizer = Stylizer(model="cd16x", device="auto")
    >>> out = stylizer.stylize(frame_rgb, "starry_night.jpg", StyleControls(alpha=0.8))

    Speed options: `compile=True` runs the per-frame path through torch.compile (once per frame
    size; tens of seconds on a CPU); `tile` is the tile side in pixels for large frames (None: tile
    only where the frame would not fit in memory, 0: never); `threads` sets the CPU thread count
    (default: one per physical core on a CPU, CUDA_HOST_THREADS on a CUDA GPU); `frame_workers` is how
    many frames a video render stylizes at once on a CPU, each on its share of the threads (None: as
    `auto_frames_in_flight` finds best);
    `cuda_graphs` replays fixed-size frames as CUDA graphs; `content_size` (the lower-resolution mode) runs
    the networks with each frame's shorter side at that many pixels and scales the result back.
    """

    def __init__(
        self,
        model: str = "cd16x",
        device: str = "auto",
        precision: str = "auto",
        *,
        style_size: int = 512,
        content_size: int = 0,
        encoder_weights: str | Path | None = None,
        decoder_weights: str | Path | None = None,
        cache_dir: str | Path | None = None,
        store: WeightStore | None = None,
        compile: bool = False,
        tile: int | None = None,
        threads: int | None = None,
        frame_workers: int | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        store = store or WeightStore()
        entry = store.registry.model(model)
        encoder_path = Path(encoder_weights) if encoder_weights else store.resolve(entry.encoder)
        decoder_path = Path(decoder_weights) if decoder_weights else store.resolve(entry.decoder)
        self.info = ModelInfo(model, entry.architecture, encoder_path, decoder_path)
        self.device = select_device(device)
        if tile is not None and tile != 0 and tile < MIN_TILE:
            raise UserError(f"tile size must be 0 (off) or at least {MIN_TILE} pixels, got {tile}")
        self.tile = tile
        self._tile_memo: dict[tuple[int, int], int | None] = {}
        if frame_workers is not None and frame_workers < 1:
            raise UserError(f"frame workers must be at least 1, got {frame_workers}")
        if frame_workers not in (None, 1) and self.device.type != "cpu":
            log.warning("%s runs one frame at a time; ignoring %d frame workers", self.device.type, frame_workers)
            frame_workers = 1
        self.frame_workers = frame_workers
        self.threads = configure_cpu_threads(threads, self.device.type)  # on a GPU, threads only copy frames
        if self.device.type == "cpu":
            reuse_freed_host_memory()
        if self.device.type == "cuda":
            configure_cuda()
        self.content_size = content_size
        encoder = build_network("encoder", entry.architecture, encoder_path)
        decoder = build_network("decoder", entry.architecture, decoder_path)
        encoder_id = store.registry.file(entry.encoder).sha256 if not encoder_weights else sha256_of(encoder_path)
        decoder_id = store.registry.file(entry.decoder).sha256 if not decoder_weights else sha256_of(decoder_path)
        cache = Path(cache_dir) if cache_dir is not None else user_cache_dir()
        self.dtype = select_precision(precision, self.device,
                                      functools.partial(remembered_bf16_speedup, cache / BF16_PROBE_MEMO))
        if precision == "auto" and self.dtype == torch.float16:
            probe_key = f"{encoder_id[:16]}-{decoder_id[:16]}-{device_name(self.device)}-torch{torch.__version__}"
            self.dtype = safe_half_precision(encoder, decoder, self.device, memo=cache / "fp16-probe.json",
                                             key=probe_key)
        # Style statistics are computed once per style, in fp32, so the cache is precision-independent.
        self._style_encoder = encoder.to(self.device)
        self.encoder = self._convert(fold_colour_conv(encoder))
        if self.device.type in FOLD_UPSAMPLING_UP_TO:
            decoder = fold_upsampling(decoder, FOLD_UPSAMPLING_UP_TO[self.device.type])
        if self.dtype in COLUMN_PAIRS.get(self.device.type, ()):
            decoder = pair_thin_convs(decoder)
        self.decoder = self._convert(decoder)
        if self.dtype in WINOGRAD.get(self.device.type, ()):
            self.encoder, self.decoder = winograd_convs(self.encoder), winograd_convs(self.decoder)
        self.compiled = compile
        self._frames_path = self._build_frames_path(compile, cuda_graphs)
        self._alphas: dict[float, torch.Tensor] = {}
        self.bank = StyleBank(self._encode_style, encoder_id[:16], style_size, cache)
        self._color_memo: dict[str, tuple[torch.Tensor, A.StyleStats]] = {}
        self._networks_alone: tuple[Callable[[torch.Tensor], torch.Tensor], ...] | None = None
        scaled = f", networks at {content_size} px on the shorter side" if content_size else ""
        log.info("model %s on %s in %s%s", model, self.device, str(self.dtype).removeprefix("torch."), scaled)

    def _convert(self, network: torch.nn.Module) -> torch.nn.Module:
        """Weights converted once: device, dtype and channels_last memory layout."""
        return network.to(self.device, self.dtype, memory_format=torch.channels_last)

    def _build_frames_path(self, compile: bool, cuda_graphs: bool):
        """The plain per-frame path: eager or compiled, replayed as CUDA graphs on a GPU."""
        path = FramePath(self.encoder, self.decoder, self.dtype)
        run = compile_module(path, self.device) if compile else path
        if self.device.type == "cuda" and cuda_graphs:
            run = CudaGraphRunner(run)
        return run

    # ------------------------------------------------------------------ styles
    @torch.inference_mode()
    def _encode_style(self, rgb: np.ndarray, variant: str) -> A.StyleStats:
        x = frames_to_tensor(torch.from_numpy(rgb).to(self.device), torch.float32)
        if variant == "luma":
            x = A.luminance_image(x)
        x, _ = pad_to_multiple(x)
        return A.channel_stats(self._style_encoder(x))

    def prepare(self, styles: StyleSource | Sequence[StyleSource], controls: StyleControls = StyleControls()) -> PreparedStyle:
        """Look up (or compute once) each style's statistics and put them on the device.

        Call it when the styles or controls change, not per frame.
        """
        sources = [styles] if isinstance(styles, (str, Path, np.ndarray, A.StyleStats)) else list(styles)
        if not sources:
            raise UserError("no style given")
        if controls.mask is not None and len(sources) > 2:
            raise UserError(f"a mask splits the frame into two regions, so it takes one or two styles, got {len(sources)}")
        variant = "luma" if controls.preserve_color == "luminance" else "rgb"
        stats = tuple(self._to_device(self.bank.stats(s, variant)) for s in sources)
        try:
            mixed = A.mix_stats(stats, controls.weights)
        except ValueError as exc:
            raise UserError(f"--style-weights: {exc}") from None
        images = ()
        if controls.preserve_color == "histogram":
            if any(isinstance(s, A.StyleStats) for s in sources):
                raise UserError("histogram colour preservation needs style images, not precomputed statistics")
            images = tuple(self.bank.image(s) for s in sources)
        mask = None
        if controls.mask is not None:
            mask = torch.from_numpy(np.ascontiguousarray(controls.mask, dtype=np.float32))[None, None].to(self.device)
        return PreparedStyle(tuple(style_name(s) for s in sources), stats, mixed, controls, images, mask)

    def _to_device(self, stats: A.StyleStats) -> A.StyleStats:
        return A.StyleStats(stats.mean.to(self.device), stats.std.to(self.device))

    # ------------------------------------------------------------------ frames
    def stylize(self, frame, styles: StyleSource | Sequence[StyleSource] | PreparedStyle,
                controls: StyleControls = StyleControls()):
        """Stylize one frame or a batch; the result has the input's type, layout, size and device."""
        prepared = styles if isinstance(styles, PreparedStyle) else self.prepare(styles, controls)
        if isinstance(frame, np.ndarray):
            _check_frame(frame)
            return download(self.stylize_uint8(torch.from_numpy(_writable(frame)), prepared)[0]).numpy()
        if isinstance(frame, torch.Tensor) and frame.dtype == torch.uint8:
            out = self.stylize_uint8(frame, prepared)
            return (out[0] if frame.dim() == 3 else out).to(frame.device)
        if isinstance(frame, torch.Tensor) and frame.is_floating_point() and frame.dim() == 4:
            with torch.inference_mode():
                return self.stylize_images(frame.to(self.device, self.dtype), prepared).to(frame.device, frame.dtype)
        raise TypeError("frame must be an RGB uint8 numpy array (H, W, 3), a uint8 tensor (N, H, W, 3) "
                        "or a float tensor (N, 3, H, W) in [0, 1]")

    @torch.inference_mode()
    def stylize_uint8(self, frames: torch.Tensor, prepared: PreparedStyle) -> torch.Tensor:
        """(N, H, W, 3) or (H, W, 3) uint8 RGB -> (N, H, W, 3) uint8 RGB on the device."""
        frames = upload(frames, self.device)
        batch = frames.unsqueeze(0) if frames.dim() == 3 else frames
        if self._plain(prepared, *batch.shape[1:3]):
            small = resize_frames(batch, inference_size(*batch.shape[1:3], self.content_size))
            out = self._frames_path(small, prepared.mixed.mean, prepared.mixed.std, self._alpha(prepared))
            return resize_frames(out, batch.shape[1:3])
        return tensor_to_frames(self.stylize_images(frames_to_tensor(batch, self.dtype), prepared))

    def _plain(self, prepared: PreparedStyle, height: int, width: int) -> bool:
        """Frames that the fast path can take: no per-frame style work, no tiling."""
        controls = prepared.controls
        return (controls.mask is None and controls.preserve_color == "none"
                and self._tile_cells(*self._network_size(height, width)) is None)

    def _network_size(self, height: int, width: int) -> tuple[int, int]:
        """The padded size the networks see for a frame: after --content-size, padded to multiples of 8
        (tiling and frames in flight are decided on it)."""
        return padded_size(*inference_size(height, width, self.content_size), STRIDE)

    def _alpha(self, prepared: PreparedStyle) -> torch.Tensor:
        """alpha as a device tensor (made once per value), so changing it recompiles nothing."""
        alpha = prepared.controls.alpha
        if alpha not in self._alphas:
            self._alphas[alpha] = torch.tensor(alpha, dtype=torch.float32, device=self.device)
        return self._alphas[alpha]

    def warm_up(self, height: int, width: int, prepared: PreparedStyle, frames: int = 3) -> None:
        """Run a few frames of this size so that compilation, cuDNN autotuning and CUDA-graph capture
        happen before the first real frame."""
        blank = torch.zeros(height, width, 3, dtype=torch.uint8)
        for _ in range(frames):
            self.stylize_uint8(blank, prepared)
        synchronize(self.device)

    def frames_in_flight(self, height: int, width: int) -> int:
        """How many frames of this size to stylize at once (see `frame_workers`)."""
        if self.frame_workers is not None:
            return self.frame_workers
        pixels = math.prod(self._network_size(height, width))
        activation_bytes = self._widest_full_res_channels() * pixels * self.dtype.itemsize
        return auto_frames_in_flight(self.device, self.threads, activation_bytes)

    # ------------------------------------------------------------------ tiling
    def _tile_cells(self, height: int, width: int) -> int | None:
        """Tile side in feature cells for a frame of this size, or None to run it whole (decided once per size)."""
        if self.tile == 0:
            return None
        if (height, width) not in self._tile_memo:
            side = self.tile
            if side is None:
                bytes_per_pixel = _ACTIVATION_COPIES * self._widest_full_res_channels() * self.dtype.itemsize
                side = auto_tile_size(height, width, bytes_per_pixel, available_memory(self.device))
                if side is not None:
                    log.info("%dx%d frames are processed in tiles of %d px to fit in memory", width, height, side)
            fits = side is None or (height <= side and width <= side)
            self._tile_memo[(height, width)] = None if fits else side // STRIDE
        return self._tile_memo[(height, width)]

    def _widest_full_res_channels(self) -> int:
        return self.encoder._modules[self.encoder.stages[0][0]].out_channels

    def networks_alone(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], ...]:
        """(encoder, decoder), each callable on its own and compiled where the frame path is: for timing
        the stages apart. Made once, so that a size already compiled is not announced again."""
        if self._networks_alone is None:
            networks = (self.encoder, self.decoder)
            self._networks_alone = (tuple(compile_module(network, self.device) for network in networks)
                                    if self.compiled else (self.encode, self.decode))
        return self._networks_alone

    def encode(self, padded: torch.Tensor) -> torch.Tensor:
        """Content features of (N, 3, H, W) images in [0, 1] (H, W multiples of 8), tiled where needed."""
        cells = self._tile_cells(*padded.shape[-2:])
        return encode_tiled(self.encoder, padded, cells) if cells else self.encoder(padded)

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Decoder output (unclamped) of features, tiled where the full-size frame would need it."""
        cells = self._tile_cells(t.shape[-2] * STRIDE, t.shape[-1] * STRIDE)
        return decode_tiled(self.decoder, t, cells).to(t.dtype) if cells else self.decoder(t)

    def stylize_images(self, x: torch.Tensor, prepared: PreparedStyle) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on the device -> stylized, same size, clamped to [0, 1]."""
        frame_size = tuple(x.shape[-2:])
        small = resize_images(x, inference_size(*frame_size, self.content_size))
        return resize_images(self._stylize_native(small, prepared), frame_size).clamp_(0, 1)

    def _stylize_native(self, x: torch.Tensor, prepared: PreparedStyle) -> torch.Tensor:
        controls = prepared.controls
        content = A.luminance_image(x) if controls.preserve_color == "luminance" else x
        padded, (height, width) = pad_to_multiple(content)
        feats = self.encode(padded.contiguous(memory_format=torch.channels_last))
        stats = self._histogram_stats(x, prepared) if controls.preserve_color == "histogram" else None
        if prepared.mask is not None:
            t = A.masked_adain(feats, self._regions(prepared, stats, padded.shape[-2:]), controls.alpha)
        else:
            t = A.adain(feats, stats[0] if stats else prepared.mixed, controls.alpha)
        out = self.decode(t)[..., :height, :width].clamp(0, 1)
        if controls.preserve_color == "luminance":
            out = A.combine_luminance(out.float(), x.float()).to(x.dtype)
        return out

    def _regions(self, prepared: PreparedStyle, stats: tuple[A.StyleStats, ...] | None,
                 padded_shape: torch.Size) -> list[tuple[torch.Tensor, A.StyleStats | None]]:
        """Mask regions at the padded size: first style inside, second style (or content) outside."""
        height, width = prepared.mask.shape[-2:]
        inside = F.pad(prepared.mask, (0, padded_shape[1] - width, 0, padded_shape[0] - height), mode="replicate")
        per_style = stats if stats is not None else prepared.stats
        outside_style = per_style[1] if len(per_style) > 1 else None
        return [(inside, per_style[0]), (1.0 - inside, outside_style)]

    def _histogram_stats(self, x: torch.Tensor, prepared: PreparedStyle) -> tuple[A.StyleStats, ...]:
        """Statistics of each style recoloured to this content's colour moments (mixed for no mask).

        The recoloured style is re-encoded only when the content's colour mean/covariance drift,
        so a video pays for it at scene changes, not on every frame.
        """
        small = F.interpolate(x.float(), size=(64, 64), mode="area")
        moments = torch.cat([small.mean(dim=(2, 3)).flatten(), torch.cov(small.flatten(2)[0]).flatten()])
        per_style = []
        for image in prepared.images:
            memo = self._color_memo.get(image.key)
            if memo is None or (memo[0] - moments).abs().max() > _COLOR_DRIFT:
                style = frames_to_tensor(torch.from_numpy(image.rgb).to(self.device), torch.float32)
                recoloured = A.match_color(style, x[:1].float())
                padded, _ = pad_to_multiple(recoloured)
                memo = (moments, A.channel_stats(self._style_encoder(padded)))
                self._color_memo[image.key] = memo
            per_style.append(memo[1])
        if prepared.mask is not None:
            return tuple(per_style)
        return (A.mix_stats(per_style, prepared.controls.weights),)


def _writable(array: np.ndarray) -> np.ndarray:
    """torch.from_numpy warns on read-only arrays (e.g. decoded video frames); copy only those."""
    return array if array.flags.writeable else array.copy()


def _check_frame(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise TypeError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
