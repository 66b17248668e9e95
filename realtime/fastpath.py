"""The per-frame hot path: uint8 frames in, uint8 frames out, as one module that torch.compile can fuse
and a CUDA graph can capture, plus the network rewrites that cut full-resolution work (the colour conv
folded into the first conv; thin upsampling blocks run at the low resolution; the conv to RGB run on
column pairs).

Only the plain controls (style statistics and alpha) take this path; masks, colour preservation and
tiling stay on the Stylizer's general path.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from . import adain as A
from .images import frames_to_tensor, pad_to_multiple, tensor_to_frames
from .models import ColumnPairConv, UpsampledConv
from .winograd import WinogradConv, is_plain_3x3_conv, worth_winograd

log = logging.getLogger(__name__)

RECOMPILE_LIMIT = 64
"""Compiled graphs kept per code object: one per model, frame size and tensor kind (batch, inference)."""


@torch.no_grad()
def fold_colour_conv(encoder: nn.Module) -> nn.Module:
    """A copy of a VGG-like encoder whose first 3x3 conv absorbs the 1x1 RGB -> BGR-mean conv in front of it.

    Both are linear and a per-pixel map commutes with reflection padding, so
    conv(pad(W0 x + b0)) = conv'(pad(x)) with W' = W . W0 and b' = b + sum(W) . b0: the same function
    with one full-resolution pass less.
    """
    folded = copy.deepcopy(encoder)
    colour = folded._modules[folded.colour_conv]
    first = folded._modules[folded.stages[0][0]]
    colour_matrix = colour.weight[:, :, 0, 0].double()
    weight = first.weight.double()
    first.bias.copy_(first.bias.double() + torch.einsum("oikl,i->o", weight, colour.bias.double()))
    first.weight.copy_(torch.einsum("oikl,ij->ojkl", weight, colour_matrix))
    folded._modules[folded.colour_conv] = nn.Identity()
    return folded


def fold_upsampling(decoder: nn.Module, max_channels: int | None = None) -> nn.Module:
    """A copy of a decoder whose upsample-then-conv blocks (those with at most `max_channels` output channels;
    None: all) run at the low resolution (`UpsampledConv`): the same function with 4/9 of those blocks'
    multiply-adds, without the upsampled image and its padding pass, and with four times wider convolutions.

    Measured alternated in one process (benchmarks/RESULTS.md, 2026-11-27), on the 2-core Xeon without AMX,
    all three blocks against none: vgg 1.12-1.15x at 512x512 in fp32, eager and compiled; cd16x 1.09-1.15x at
    256x256 (fp32 and bf16) and 1.10x at 1280x720 in fp32. An earlier form with 3x3 phase kernels (the same
    multiply-adds as the blocks) was measured on an H100 in fp16 for the thin blocks: cd16x 13-17 % faster
    from 720p to 4K, vgg 5-7 % at 720p; the 2x2 form is not yet measured there.
    """
    def fold(name: str, module: nn.Module) -> nn.Module | None:
        if name in decoder.upsampled_convs and (max_channels is None or module.out_channels <= max_channels):
            return UpsampledConv(module)
        return None
    return _with_children_replaced(decoder, fold)


def winograd_convs(network: nn.Module) -> nn.Module:
    """A copy of a network whose wide 3x3 convs (`winograd.worth_winograd`) run in the Winograd F(4x4, 3x3)
    form: the same function with a quarter of their multiply-adds (`engine.WINOGRAD` says where)."""
    return _with_children_replaced(network, lambda _, module: WinogradConv(module) if worth_winograd(module) else None)


PAIRED_MAX_OUT_CHANNELS = 8
"""3x3 convs with at most this many outputs run on column pairs (`pair_thin_convs`): half of oneDNN's
16-channel block, so the doubled outputs still fit one."""


def pair_thin_convs(network: nn.Module) -> nn.Module:
    """A copy of a network whose plain 3x3 convs with few outputs (a decoder's last, to RGB) run on column
    pairs (`ColumnPairConv`): the same function, 1.4-1.5x faster on CPUs (`engine.COLUMN_PAIRS` says where)."""
    def thin(module: nn.Module) -> bool:
        return is_plain_3x3_conv(module) and module.out_channels <= PAIRED_MAX_OUT_CHANNELS
    return _with_children_replaced(network, lambda _, module: ColumnPairConv(module) if thin(module) else None)


def _with_children_replaced(network: nn.Module,
                            replacement: Callable[[str, nn.Module], nn.Module | None]) -> nn.Module:
    """A copy of a network in which each child that `replacement(name, child)` gives a module for is replaced by it."""
    copied = copy.deepcopy(network)
    for name, module in network.named_children():
        new = replacement(name, module)
        if new is not None:
            copied._modules[name] = new
    return copied


class FramePath(nn.Module):
    """(N, H, W, 3) uint8 RGB -> stylized (N, H, W, 3) uint8 RGB with AdaIN to given statistics.

    Conversions to and from float happen on the device; the style arrives as tensors (mean, std,
    alpha), so a new style or alpha never recompiles or recaptures anything.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.dtype = dtype

    def forward(self, frames: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        x = frames_to_tensor(frames, self.dtype)
        padded, (height, width) = pad_to_multiple(x)
        feats = self.encoder(padded.contiguous(memory_format=torch.channels_last))
        t = A.adain(feats, A.StyleStats(style_mean, style_std), alpha)
        return tensor_to_frames(self.decoder(t)[..., :height, :width].clamp(0, 1))


def compile_module(module: nn.Module, device: torch.device) -> Callable[..., torch.Tensor]:
    """torch.compile a module (the frame path, or a network alone), specialised to each input shape.

    CPU: inductor with freezing, which turns the weights into constants so conv+ReLU become single
    oneDNN calls on pre-packed weights, and a C++ wrapper that calls the kernels without Python in
    between (cd16x at 256x256: +14 % fps, vgg: +7 %); its kernels take the calling thread's OpenMP thread
    count at run time, so frame workers with one thread each do not run two each. CUDA: inductor's default
    mode (cuDNN convolutions, fused pointwise kernels) without its own CUDA graphs, which CudaGraphRunner
    provides; max-autotune is left out because it benchmarks Triton templates for every convolution at
    every frame size (minutes).
    These settings must be on while each shape compiles. inductor's settings are process-wide, so they are
    switched on only around calls that may compile, one at a time: inputs not seen before, or a thread
    count not seen before (dynamo guards on it, so a frame worker with one thread compiles its own graph;
    outside the settings that graph was compiled without freezing, 0.75x as fast). Calls with a known
    signature run unlocked, from any number of threads. Each frame size is one compiled
    graph of FramePath.forward, a code object that all Stylizers share, so dynamo's default limit of 8
    graphs per code object would silently fall back to eager after a few sizes and models (seen in a GPU
    bench run: every cd16x row after vgg's was eager).
    """
    compiled = torch.compile(module, dynamic=False)
    settings = {} if device.type == "cuda" else {"freezing": True, "cpp_wrapper": True, "cpp.dynamic_threads": True}
    compiling = threading.Lock()
    compiled_for: set[tuple] = set()

    def run(*args: torch.Tensor) -> torch.Tensor:
        signature = (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_num_threads(),
                     *((a.shape, a.stride(), a.dtype, a.device, a.is_inference()) for a in args))
        if signature in compiled_for:
            return compiled(*args)
        with compiling, torch._inductor.config.patch(settings), \
                torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            if signature in compiled_for:  # another thread compiled it while this one waited
                return compiled(*args)
            log.info("compiling for input %s on %d thread(s): once per frame size and thread count, "
                     "tens of seconds on a CPU", tuple(args[0].shape), torch.get_num_threads())
            started = time.perf_counter()
            output = compiled(*args)
            log.info("compiled in %.1f s", time.perf_counter() - started)
        compiled_for.add(signature)
        return output
    return run


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor


class CudaGraphRunner:
    """Replays a function of CUDA tensors as one captured CUDA graph per input shape: one launch per
    frame instead of one per kernel, which matters most for small frames on fast GPUs.

    A shape is captured the second time it is seen (one-off image sizes stay eager); the `keep` most
    recent graphs are kept. Outputs are copied out of the graph's static buffer, so callers may hold
    them while the next frame runs. Tested on an H100 (issue 7): replay equal to eager, captured once.
    """

    def __init__(self, function: Callable[..., torch.Tensor], keep: int = 2, warmup: int = 2) -> None:
        self.function = function
        self.keep = keep
        self.warmup = warmup
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._seen: set[tuple] = set()

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        captured = self._graphs.get(key)
        if captured is None:
            if key not in self._seen:
                self._seen.add(key)
                return self.function(*args)
            captured = self._capture(args)
            self._graphs[key] = captured
            while len(self._graphs) > self.keep:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        for static, arg in zip(captured.inputs, args):
            static.copy_(arg, non_blocking=True)
        captured.graph.replay()
        return captured.output.clone()

    def _capture(self, args: tuple[torch.Tensor, ...]) -> _Captured:
        inputs = tuple(a.clone() for a in args)
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN picks algorithms, allocator settles
            for _ in range(self.warmup):
                self.function(*inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.function(*inputs)
        log.debug("captured a CUDA graph for input shapes %s", [tuple(a.shape) for a in inputs])
        return _Captured(graph, inputs, output)
