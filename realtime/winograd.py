"""Winograd F(4x4, 3x3) convolution (Lavin & Gray, 2016): a 3x3 conv over 6x6 input tiles as 36 matrix
products, one per tile position, with 4x fewer multiply-adds than the direct conv (36 instead of 144 per
4x4 output tile and channel pair), in exchange for a transform pass on each side.

oneDNN dropped its Winograd kernels, so on a CPU without AMX, where the direct 3x3 convs already run at the
matmul's rate, fewer multiply-adds are the only way left to go faster. Written in plain tensor ops; under
torch.compile the tiling copies fuse with their neighbours (bias, ReLU, the next layer's padding). Eager, the
transforms are passes of their own and it still wins on wide layers; in bf16 or fp16 the transforms' rounding
shows; so the engine uses it for fp32 on CPUs (`engine.WINOGRAD`).
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

MIN_CHANNEL_PRODUCT_RATIO = 64
"""A conv takes the Winograd form where in * out / (in + out) reaches this (128 -> 128): the multiply-adds
saved grow with in * out, the transforms' passes with in + out. Measured per layer with ReLU on the 2-core
Xeon without AMX (fp32; `benchmarks/winograd_layers.py`, benchmarks/RESULTS.md): 1.28-2.21x eager and
1.28-2.28x compiled for every layer of ratio 64 to 171 from 64x64 to 320x180; at ratio 43, 64 -> 128
0.97x / 1.29x and 128 -> 64 0.87x / 1.04x at 256x256; 64 -> 64 (32) 0.73x / 0.90x at 512x512."""


def worth_winograd(conv: nn.Module) -> bool:
    """Whether a module is a plain unpadded 3x3 stride-1 conv wide enough to gain from the Winograd form."""
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3) or conv.groups != 1:
        return False
    if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.padding != (0, 0):
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


def conv3x3(padded: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor,
            transforms: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The unpadded 3x3 conv of (N, I, H+2, W+2) with a `kernel_transform`ed kernel (36, I, O), a bias and
    the `tile_transforms`: (N, O, H, W) in channels_last memory, equal to F.conv2d up to rounding (relative
    error ~1e-5 in fp32).

    Three matrix products: the input tiles (36 values, channels innermost) times B^T (x) B^T; the 36 tile
    positions' products with the kernel; their results times A^T (x) A^T. Written as products rather than
    as sums of tile elements, torch.compile keeps a few simple loops (the vgg frame path compiled in 26-28 s
    instead of 234-239 s, and ran faster).
    """
    n, _, padded_height, padded_width = padded.shape
    height, width = padded_height - 2, padded_width - 2
    rows, columns = math.ceil(height / TILE), math.ceil(width / TILE)
    if (rows * TILE, columns * TILE) != (height, width):  # zeros complete the last tiles, cropped below
        padded = F.pad(padded, (0, columns * TILE - width, 0, rows * TILE - height))
    input_transform, output_transform = transforms
    # one name, rebound at each step: eager frees each intermediate (2.25x the input or output) once used
    x = padded.unfold(2, TILE + 2, TILE).unfold(3, TILE + 2, TILE)  # (N, I, rows, columns, 6, 6)
    x = x.permute(4, 5, 0, 2, 3, 1).reshape(36, -1)  # (tile position, N * rows * columns * I)
    x = torch.mm(input_transform, x)
    x = torch.bmm(x.reshape(36, n * rows * columns, -1), kernel)  # (36, tiles, O)
    x = torch.mm(output_transform, x.reshape(36, -1))  # (16, tiles * O)
    x = x.reshape(TILE, TILE, n, rows, columns, -1).permute(2, 3, 0, 4, 1, 5)
    x = x.reshape(n, rows * TILE, columns * TILE, -1)[:, :height, :width] + bias
    return x.permute(0, 3, 1, 2)


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

    def forward(self, padded: torch.Tensor) -> torch.Tensor:
        return conv3x3(padded, self.kernel, self.bias, (self.input_transform, self.output_transform))
