"""Winograd F(4x4, 3x3) convolution (Lavin & Gray, 2016): a 3x3 conv over 6x6 input tiles as 36 matrix
products, one per tile position, with 4x fewer multiply-adds than the direct conv (36 instead of 144 per
4x4 output tile and channel pair), in exchange for a transform pass on each side.

oneDNN dropped its Winograd kernels, so on a CPU without AMX, where the direct 3x3 convs already run at the
matmul's rate, fewer multiply-adds are the only way left to go faster. Written in plain tensor ops, a band
of tiles at a time so that the transforms' passes stay in cache, as one operator that torch.compile calls
rather than traces. In bf16 or fp16 the transforms' rounding shows, so the engine uses it for fp32 on CPUs
(`engine.WINOGRAD`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TILE = 4
"""Output pixels per tile side; input tiles are TILE + 2 wide."""

# The transforms (B^T, A^T, G) for interpolation points 0, 1, -1, 2, -2 and infinity.
_INPUT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
          (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_OUTPUT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
_KERNEL = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
           (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))

MIN_CHANNEL_PRODUCT_RATIO = 40
"""A conv takes the Winograd form where in * out / (in + out) reaches this (64 -> 128 and 128 -> 64, 42.7):
the multiply-adds saved grow with in * out, the transforms' passes with in + out. Measured on the 2-core
Xeon without AMX (fp32, banded; `benchmarks/winograd_layers.py`, benchmarks/RESULTS.md), each layer alone
with its ReLU: ratio 64 to 171 1.53-2.68x; 43 1.19-1.50x; 32 (64 -> 64) 1.07-1.12x from 64x64 to 512x512;
21 and 16 (32 -> 64, 32 -> 32) 0.69-0.96x. Whole frames, alternated against a threshold of 64: at 40 vgg
1.028x at 512x512 (1.016-1.051) and cd16x 0.995-1.000x (medians of 5 rounds); at 32, where 64 -> 64
qualifies too, cd16x 0.986-0.995x and vgg 1.031x."""


def is_plain_3x3_conv(module: nn.Module) -> bool:
    """Whether a module is an unpadded, ungrouped 3x3 stride-1 conv: the kind that the Winograd and
    column-pair forms (`fastpath`) replace."""
    return (isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3) and module.groups == 1
            and module.stride == (1, 1) and module.dilation == (1, 1) and module.padding == (0, 0))


def worth_winograd(conv: nn.Module) -> bool:
    """Whether a module is a plain 3x3 conv wide enough to gain from the Winograd form."""
    if not is_plain_3x3_conv(conv):
        return False
    channels_in, channels_out = conv.in_channels, conv.out_channels
    return channels_in * channels_out / (channels_in + channels_out) >= MIN_CHANNEL_PRODUCT_RATIO


def kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) kernel -> (36, I, O): G w G^T for every channel pair, computed in float64."""
    g = torch.tensor(_KERNEL, dtype=torch.float64, device=weight.device)
    transformed = torch.einsum("ak,oikl,bl->abio", g, weight.double(), g)
    return transformed.reshape(36, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def tile_transforms(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B^T (x) B^T, A^T (x) A^T) in `like`'s dtype and device: the 2-D transforms X -> M X M^T of the input
    (36 x 36) and output (16 x 36) tiles, each as one matrix acting on tiles flattened row by row."""
    def on_both_sides(rows: tuple[tuple[int, ...], ...]) -> torch.Tensor:
        m = torch.tensor(rows, dtype=torch.float64, device=like.device)
        return torch.kron(m, m).to(like.dtype)
    return on_both_sides(_INPUT), on_both_sides(_OUTPUT)


BAND_BYTES = 4 * 2**20
"""The tiles are transformed and multiplied a band of tile rows at a time, each band's largest intermediate
at most about this size, so that the three products and the output write find their data in the cores'
caches instead of memory (2-core Xeon, fp32, one layer with its ReLU: 128 -> 128 at 256x256 49.7 -> 37.0 ms,
64 -> 128 at 256x256 31.6 -> 22.2 ms, against 1, 2 and 8 MB bands; benchmarks/RESULTS.md)."""

_BIAS_POSITION = 7
"""Tile position (1, 1): A^T's column 1 is all ones, so a value added there reaches all 16 outputs of the
tile once; the bias is added to the products there instead of in a pass over the whole output."""


@torch.library.custom_op("realtime::winograd_conv3x3", mutates_args=())
def conv3x3(padded: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, input_transform: torch.Tensor,
            output_transform: torch.Tensor, relu: bool) -> torch.Tensor:
    """The unpadded 3x3 conv of (N, I, H+2, W+2) with a `kernel_transform`ed kernel (36, I, O), a bias and
    the `tile_transforms`, then a ReLU if asked: (N, O, H, W) in channels_last memory, equal to F.conv2d
    up to rounding (relative error ~1e-5 in fp32).

    Three matrix products: the input tiles (36 values, channels innermost) times B^T (x) B^T; the 36 tile
    positions' products with the kernel; their results times A^T (x) A^T. A band of tile rows at a time
    (`BAND_BYTES`), each band written into the output with its ReLU. An operator of its own, so that
    torch.compile calls it as it is instead of tracing into it: inductor's code for these products and
    copies ran slower than these eager calls (64 -> 64 at 512x512, 2-core Xeon, fp32: 78-86 ms against
    56 ms) and took minutes to compile in some forms.
    """
    n, _, padded_height, padded_width = padded.shape
    height, width = padded_height - 2, padded_width - 2
    rows, columns = math.ceil(height / TILE), math.ceil(width / TILE)
    cropped = (rows * TILE, columns * TILE) != (height, width)
    if cropped:  # zeros complete the last tiles, cropped below
        padded = F.pad(padded, (0, columns * TILE - width, 0, rows * TILE - height))
    out = torch.empty((n, kernel.shape[2], rows * TILE, columns * TILE), dtype=padded.dtype, device=padded.device,
                      memory_format=torch.channels_last)
    band = max(1, BAND_BYTES // (36 * n * columns * max(kernel.shape[1:]) * padded.element_size()))
    for first in range(0, rows, band):
        last = min(rows, first + band)
        tiles = _tile_outputs(padded, kernel, bias, input_transform, output_transform, first, last)
        target = out[:, :, first * TILE:last * TILE].permute(0, 2, 3, 1)
        target = target.unflatten(1, (last - first, TILE)).unflatten(3, (columns, TILE))
        torch.clamp_min(tiles, 0, out=target) if relu else target.copy_(tiles)
    if cropped:
        return out[:, :, :height, :width].contiguous(memory_format=torch.channels_last)
    return out


@conv3x3.register_fake
def _conv3x3_shape(padded: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, input_transform: torch.Tensor,
                   output_transform: torch.Tensor, relu: bool) -> torch.Tensor:
    n, _, padded_height, padded_width = padded.shape
    return padded.new_empty((n, kernel.shape[2], padded_height - 2, padded_width - 2)).contiguous(
        memory_format=torch.channels_last)


def _tile_outputs(padded: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, input_transform: torch.Tensor,
                  output_transform: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """The conv's outputs (bias added) for tile rows first .. last-1: (N, rows, 4, columns, 4, O), a view."""
    n = padded.shape[0]
    # one name, rebound at each step: eager frees each intermediate (2.25x the input or output) once used
    x = padded[:, :, first * TILE:last * TILE + 2].unfold(2, TILE + 2, TILE).unfold(3, TILE + 2, TILE)
    rows, columns = x.shape[2], x.shape[3]
    x = x.permute(4, 5, 0, 2, 3, 1).reshape(36, -1)  # (tile position, N * rows * columns * I)
    x = torch.mm(input_transform, x)
    x = torch.bmm(x.reshape(36, n * rows * columns, -1), kernel)  # (36, tiles, O)
    x[_BIAS_POSITION] += bias
    x = torch.mm(output_transform, x.reshape(36, -1))  # (16, tiles * O)
    return x.reshape(TILE, TILE, n, rows, columns, -1).permute(2, 3, 0, 4, 1, 5)


class WinogradConv(nn.Module):
    """An unpadded 3x3 conv (inference copies only; see `fastpath.winograd_convs`) in the Winograd form:
    the same function as the conv it replaces, with its kernel and the tile transforms made once."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.register_buffer("kernel", kernel_transform(conv.weight.detach()))
        bias = conv.bias.detach().clone() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        self.register_buffer("bias", bias)
        input_transform, output_transform = tile_transforms(conv.weight)
        self.register_buffer("input_transform", input_transform, persistent=False)
        self.register_buffer("output_transform", output_transform, persistent=False)

    def forward(self, padded: torch.Tensor, relu: bool = False) -> torch.Tensor:
        return conv3x3(padded, self.kernel, self.bias, self.input_transform, self.output_transform, relu)
