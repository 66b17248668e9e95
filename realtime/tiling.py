"""Tiled inference, so that frames too large for memory (4K on an 8 GiB GPU) still run at full resolution.

Tiles overlap by margins that cover the networks' receptive field, so every pixel a tile keeps is
computed from the same inputs as without tiling. The encoder's tiles are cut to their cores (the
features are exact, so AdaIN still sees the whole frame's statistics); the decoder's tiles are
blended with linear ramps across each seam, which hides the last floating-point differences
(different tile shapes may pick different convolution algorithms).

Units: tiles are laid out on the feature grid (1/8 of the image, the encoders' output stride),
so every image-space tile edge falls on a multiple of 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

STRIDE = 8
"""Pixels per feature-grid cell: the encoders downsample three times by 2."""

ENCODER_MARGIN = 4
"""Feature cells of context around an encoder tile. Going back from relu4_1 through conv4_1, three
2x2 pools and the 3x3 convs (2 at 1x, 2 at 2x, 4 at 4x, 1 at 8x) reaches 30 pixels beyond a cell's
own 8, so 32 pixels make the kept features exact; reflection padding at a tile's cut edge is
corrupted no further than that either."""

DECODER_MARGIN = 5
"""Feature cells of context around a decoder tile: its receptive field (1 conv at 1/8, 4 at 1/4, 2 at 1/2,
2 at full size, nearest upsampling in between) reaches 4 cells, and one more holds the blend band
inside the exact zone. tests/test_tiling.py checks that tiled equals untiled to float precision."""

BLEND_BAND = 8
"""Pixels on each side of a decoder seam over which the neighbouring tiles are cross-faded."""

MIN_TILE = 128
"""Smallest tile side in pixels: below it the margins cost more than the tile itself."""

MEMORY_SHARE = 0.5
"""Fraction of the available memory that one frame's activations may take before tiling starts."""


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in feature cells: the core it owns and the window it computes."""

    core_start: int
    core_end: int
    start: int
    end: int


def tile_spans(length: int, tile: int, margin: int) -> list[Span]:
    """Split `length` cells into near-equal cores of at most `tile` cells, each computed with
    `margin` cells of context on both sides (clipped to the axis)."""
    if length < 1 or tile < 1 or margin < 0:
        raise ValueError(f"need length, tile >= 1 and margin >= 0, got {length}, {tile}, {margin}")
    count = math.ceil(length / tile)
    edges = [round(i * length / count) for i in range(count + 1)]
    return [Span(a, b, max(0, a - margin), min(length, b + margin)) for a, b in zip(edges, edges[1:])]


def seam_weights(span: Span, length: int, band: int, scale: int = STRIDE) -> torch.Tensor:
    """1-D blend weights over a span's computed pixels (`scale` per cell): 1 inside the core, a linear
    ramp across 2*band pixels centred on each seam with a neighbour, 0 beyond.

    Neighbouring spans' ramps are mirror images, so the weights of all spans sum to 1 at every pixel.
    """
    pixels = torch.arange(scale * span.start, scale * span.end, dtype=torch.float32) + 0.5
    weights = torch.ones_like(pixels)
    if span.core_start > 0:
        weights *= ((pixels - (scale * span.core_start - band)) / (2 * band)).clamp(0, 1)
    if span.core_end < length:
        weights *= (((scale * span.core_end + band) - pixels) / (2 * band)).clamp(0, 1)
    return weights


def check_band(spans: list[Span], band: int, scale: int = STRIDE) -> None:
    """The blend band must lie inside every computed window and leave each core a solid middle."""
    for span in spans:
        if span.core_start > 0 and scale * (span.core_start - span.start) < band:
            raise ValueError(f"blend band {band} px exceeds the tile margin")
        if span.core_end < span.end and scale * (span.end - span.core_end) < band:
            raise ValueError(f"blend band {band} px exceeds the tile margin")
        if scale * (span.core_end - span.core_start) < 2 * band:
            raise ValueError(f"tiles of {scale * (span.core_end - span.core_start)} px are too small for a "
                             f"{band} px blend band")


def auto_tile_size(height: int, width: int, bytes_per_pixel: float, available_bytes: int | None) -> int | None:
    """None when a whole frame's activations fit in MEMORY_SHARE of the available memory (or it is unknown);
    else the largest tile side (a multiple of 64 px, at least MIN_TILE) whose window, margins included, fits."""
    if available_bytes is None:
        return None
    budget = available_bytes * MEMORY_SHARE
    if height * width * bytes_per_pixel <= budget:
        return None
    margins = 2 * STRIDE * max(ENCODER_MARGIN, DECODER_MARGIN)
    side = int(math.sqrt(budget / bytes_per_pixel)) - margins
    return max(MIN_TILE, side // 64 * 64)


def encode_tiled(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: int,
                 margin: int = ENCODER_MARGIN) -> torch.Tensor:
    """Encoder features of (N, 3, H, W) images (H, W multiples of 8) computed tile by tile, `tile` cells a side."""
    height, width = images.shape[-2] // STRIDE, images.shape[-1] // STRIDE
    out = None
    for rows in tile_spans(height, tile, margin):
        for cols in tile_spans(width, tile, margin):
            crop = images[..., STRIDE * rows.start:STRIDE * rows.end, STRIDE * cols.start:STRIDE * cols.end]
            feats = encoder(crop)
            if out is None:
                out = feats.new_empty(feats.shape[:2] + (height, width))
            out[..., rows.core_start:rows.core_end, cols.core_start:cols.core_end] = feats[
                ..., rows.core_start - rows.start:rows.core_end - rows.start,
                cols.core_start - cols.start:cols.core_end - cols.start]
    return out


def decode_tiled(decoder: Callable[[torch.Tensor], torch.Tensor], feats: torch.Tensor, tile: int,
                 margin: int = DECODER_MARGIN, band: int = BLEND_BAND) -> torch.Tensor:
    """Decoder output (N, 3, 8h, 8w) of (N, C, h, w) features, tile by tile, seams cross-faded (float32)."""
    height, width = feats.shape[-2:]
    row_spans, col_spans = tile_spans(height, tile, margin), tile_spans(width, tile, margin)
    check_band(row_spans, band)
    check_band(col_spans, band)
    out = torch.zeros(feats.shape[0], 3, STRIDE * height, STRIDE * width, device=feats.device)
    for rows in row_spans:
        row_weights = seam_weights(rows, height, band).to(feats.device)[:, None]
        for cols in col_spans:
            decoded = decoder(feats[..., rows.start:rows.end, cols.start:cols.end]).float()
            weights = row_weights * seam_weights(cols, width, band).to(feats.device)[None, :]
            out[..., STRIDE * rows.start:STRIDE * rows.end, STRIDE * cols.start:STRIDE * cols.end] += decoded * weights
    return out
