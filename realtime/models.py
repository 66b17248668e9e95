"""The encoder and decoder networks, with layouts that match the weight files, and their loaders.

Every encoder takes RGB in [0, 1] (N, 3, H, W), H and W multiples of 8, and gives relu4_1
features at H/8 x W/8; `features()` also returns relu1_1 .. relu4_1 (for training losses).
Every decoder maps relu4_1-like features back to RGB (unclamped). This module builds networks
and loads a given file; finding and downloading files is `weights.py`'s job.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError
from .winograd import WinogradConv


class Features(NamedTuple):
    """Activations at the four layers that the paper's style loss uses."""

    relu1_1: torch.Tensor
    relu2_1: torch.Tensor
    relu3_1: torch.Tensor
    relu4_1: torch.Tensor


class ReflectPadded(NamedTuple):
    """An activation already reflection-padded by 1: what an upsampling block hands the conv after it, so
    that a folded block can write its output straight into the padded buffer."""

    padded: torch.Tensor


def _conv_relu(conv: nn.Module, x: torch.Tensor | ReflectPadded) -> torch.Tensor:
    """Reflection pad by 1 (unless done), 3x3 conv, ReLU: the block every network here is made of."""
    return _padded_conv_relu(conv, _reflect_padded(x))


def _reflect_padded(x: torch.Tensor | ReflectPadded) -> torch.Tensor:
    return x.padded if isinstance(x, ReflectPadded) else _reflect_pad1(x)


def _padded_conv_relu(conv: nn.Module, padded: torch.Tensor) -> torch.Tensor:
    """The conv (unpadded) and a ReLU, as one oneDNN or cuDNN call where one fits."""
    if isinstance(conv, (WinogradConv, ColumnPairConv)):  # convs rewritten by fastpath, their ReLU fused
        return conv(padded, relu=True)
    if _fuses_relu(padded):
        return torch.ops.mkldnn._convolution_pointwise(padded, conv.weight, conv.bias, [0, 0], [1, 1], [1, 1], 1,
                                                       "relu", [], "")
    if _cudnn_fuses_relu(padded):
        return torch.cudnn_convolution_relu(padded, conv.weight, conv.bias, [1, 1], [0, 0], [1, 1], 1)
    return F.relu(conv(padded))


def reflect_pad_channels_last(x: torch.Tensor) -> torch.Tensor:
    """Reflection padding by 1 on each side, written into a channels_last buffer by slice copies."""
    n, c, h, w = x.shape
    out = _padded_buffer(x, n, c, h, w)
    out[:, :, 1:-1, 1:-1] = x
    return _reflect_border_(out)


def _padded_buffer(like: torch.Tensor, n: int, channels: int, height: int, width: int) -> torch.Tensor:
    """An empty (n, channels, height + 2, width + 2) channels_last buffer for an activation and its padding."""
    return torch.empty((n, channels, height + 2, width + 2), dtype=like.dtype, device=like.device,
                       memory_format=torch.channels_last)


def _reflect_border_(out: torch.Tensor) -> torch.Tensor:
    """Fill the 1-pixel border of a padded buffer whose interior is written: reflection padding."""
    out[:, :, 0, 1:-1] = out[:, :, 2, 1:-1]
    out[:, :, -1, 1:-1] = out[:, :, -3, 1:-1]
    out[:, :, :, 0] = out[:, :, :, 2]
    out[:, :, :, -1] = out[:, :, :, -3]
    return out


def _reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    """Reflection padding by 1. CUDA's reflection_pad2d writes NCHW whatever its input's layout, so the
    channels_last conv after it pays a layout copy (vgg fp16 at 1920x1080 on an H100: 57 % of GPU time in
    copies); there, a channels_last activation is padded by slice copies instead. Inference only (no
    in-place writes under autograd), and not under torch.compile, which fuses the padding itself."""
    if _eager_inference() and _pads_channels_last(x):
        return reflect_pad_channels_last(x)
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


def _pads_channels_last(x: torch.Tensor) -> bool:
    return x.device.type == "cuda" and x.is_contiguous(memory_format=torch.channels_last)


def _eager_inference() -> bool:
    """Under torch.inference_mode and not being traced by torch.compile: where the inference-only fast blocks
    run. Compiling is asked first: asking for the inference mode (or a layout) inside a compiled region splits
    its graph at every block (on an H100 that halved vgg's compiled speed at 1920x1080, 183 -> 102 fps)."""
    return not torch.compiler.is_compiling() and torch.is_inference_mode_enabled()


def _fuses_relu(x: torch.Tensor) -> bool:
    """Under torch.inference_mode on a CPU, conv+ReLU run as one oneDNN call (the ReLU applied as the conv
    writes its output: one full pass over the activation less; cd16x encoder at 1280x720 in bf16 ~1.4x
    faster). Not where gradients may be needed (no backward), nor under torch.compile (which fuses them
    itself, with pre-packed weights). Forward hooks on the Conv2d modules do not run on this path."""
    return (_eager_inference() and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available())


def _cudnn_fuses_relu(x: torch.Tensor) -> bool:
    """Under torch.inference_mode on CUDA in fp16/bf16, conv + bias + ReLU run as one cuDNN call instead of a
    conv, a bias add and a ReLU, each a full pass over the activation (1920x1080 fp16 on an H100, eager with
    the channels_last padding: vgg 80 -> 117 fps, cd16x 271 -> 357). Not under torch.compile, which fuses
    them itself; forward hooks on the Conv2d modules do not run on this path either."""
    return _eager_inference() and x.device.type == "cuda" and x.dtype in (torch.float16, torch.bfloat16)


def _upsample_conv_relu(conv: nn.Module, x: torch.Tensor) -> ReflectPadded:
    """Nearest 2x upsampling, then the conv+ReLU block, the result reflection-padded for the conv after it;
    an `UpsampledConv` does all three at the low resolution."""
    if isinstance(conv, UpsampledConv):
        return ReflectPadded(conv.padded_output(x))
    return ReflectPadded(_reflect_pad1(_conv_relu(conv, F.interpolate(x, scale_factor=2.0, mode="nearest"))))


# Which 3x3 taps of the original kernel fall on each of the two low-resolution rows a phase reads, after
# nearest 2x upsampling and reflection padding: output row 2i + phase reads upsampled rows 2i + phase - 1 ..
# 2i + phase + 1, i.e. low-resolution rows i-1, i, i for phase 0 (taps 0 | 1, 2 on rows i-1 | i) and i, i, i+1
# for phase 1 (taps 0, 1 | 2 on rows i | i+1). At the borders reflection of the upsampled image equals
# replication of the small one. Indexed (phase, row of the 2x2 window, tap).
_PHASE_TAPS = torch.tensor([[[1, 0, 0], [0, 1, 1]],
                            [[1, 1, 0], [0, 0, 1]]], dtype=torch.float64)


def subpixel_weights(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) kernel of a conv after nearest 2x upsampling -> (4*O, I, 2, 2) kernel that computes its
    four output phases from 2x2 windows of the low-resolution image: 4/9 of the multiply-adds. Channels are
    ordered (row phase, column phase 1 then 0, O), so that window j holds output pixels 2j-1 and 2j of a row
    as one run of 2*O channels (see `interleave_phases_padded`)."""
    taps = _PHASE_TAPS.to(weight.device)
    phases = torch.einsum("rak,sbl,oikl->rsoiab", taps, taps, weight.double()).flip(1)
    return phases.reshape(4 * weight.shape[0], weight.shape[1], 2, 2).to(weight.dtype)


def interleave_phases(windows: torch.Tensor) -> torch.Tensor:
    """(N, 4*C, H+1, W+1) outputs of the phase kernels at every 2x2 window of the padded small image ->
    (N, C, 2H, 2W) in channels_last memory. Phase (r, s) of output pixel (2i+r, 2j+s) is channel block
    2r + 1 - s of window (i+r, j+s). The interior of `interleave_phases_padded`: one interleave to keep right."""
    return interleave_phases_padded(windows)[:, :, 1:-1, 1:-1].contiguous(memory_format=torch.channels_last)


@torch.library.custom_op("realtime::interleave_phases_padded", mutates_args=())
def interleave_phases_padded(windows: torch.Tensor) -> torch.Tensor:
    """`interleave_phases`, reflection-padded by 1, written straight into the padded buffer instead of an
    interleaved image and a padding pass over it (inference only: no backward). An operator of its own, so
    that torch.compile calls it on real tensors, whose strides it reads: a traced strided view assumed a
    layout that inductor need not give the windows (compiled without freezing, as on CUDA, it read the wrong
    memory: garbage, or an illegal access on an H100). Window j of a row phase holds output
    pixels 2j-1 and 2j, padded columns 2j and 2j+1, as one run of 2C channels: each padded row is one strided
    copy of such runs from its window row, then the border, which also replaces the halves of the first and
    last runs that fall outside the image. Runs twice as long as single phases make the copy about twice as
    fast (2-core Xeon, fp32, 720p, 16 channels: 8-10 -> 4.3 ms; cd16x 720p frames 1.02-1.07x faster)."""
    windows = windows.contiguous(memory_format=torch.channels_last)
    n, channels4, rows, columns = windows.shape
    channels, height, width = channels4 // 4, rows - 1, columns - 1
    batch_stride, _, row_stride, column_stride = windows.stride()
    pairs = torch.as_strided(windows, (n, height, 2, width + 1, 2 * channels),
                             (batch_stride, row_stride, row_stride + 2 * channels, column_stride, 1))
    out = _padded_buffer(windows, n, channels, 2 * height, 2 * width)
    out.permute(0, 2, 3, 1)[:, 1:-1].view(n, height, 2, width + 1, 2 * channels).copy_(pairs)
    return _reflect_border_(out)


@interleave_phases_padded.register_fake
def _interleave_phases_padded_shape(windows: torch.Tensor) -> torch.Tensor:
    n, channels4, rows, columns = windows.shape
    return _padded_buffer(windows, n, channels4 // 4, 2 * (rows - 1), 2 * (columns - 1))


class UpsampledConv(nn.Module):
    """A decoder's nearest 2x upsampling and the 3x3 conv+ReLU after it, computed at the low resolution
    (inference copies only; see `fastpath.fold_upsampling`).

    Each output pixel of the original block depends on a 2x2 low-resolution neighbourhood, one per output
    phase, so one 2x2 conv with four times the output channels on the replicate-padded small image gives
    all four phases, which `interleave_phases` interleaves: 4/9 of the multiply-adds, without the upsampled
    image and its padding pass, and with four times wider convolutions.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, 4 * conv.out_channels, 2, dtype=conv.weight.dtype,
                              device=conv.weight.device).requires_grad_(False)
        self.conv.weight.copy_(subpixel_weights(conv.weight.detach()))
        self.conv.bias.copy_(conv.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return interleave_phases(self._windows(x))

    def padded_output(self, x: torch.Tensor) -> torch.Tensor:
        """The output, reflection-padded by 1 for the next conv, written straight into the padded buffer
        (cd16x 512x512, 2-core Xeon, fp32: 1.5-1.6x faster than interleaving, then padding)."""
        return interleave_phases_padded(self._windows(x))

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        return _padded_conv_relu(self.conv, F.pad(x, (1, 1, 1, 1), mode="replicate"))


# Which 3x3 tap column each column of a (3, 2) pair kernel takes: output column 2j + phase reads padded columns
# 2j + phase .. 2j + phase + 2, i.e. column `member` of pair j + k where 2k + member = phase + tap.
# Indexed (output phase, pair member, pair offset k, tap).
_PAIR_TAPS = torch.tensor([[[[1 if 2 * k + member == phase + tap else 0 for tap in range(3)] for k in range(2)]
                            for member in range(2)] for phase in range(2)], dtype=torch.float64)


def column_pair_weights(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) kernel -> (2*O, 2*I, 3, 2) kernel of the same conv on an image whose column pairs are
    stacked as channels: input channels (pair member, I), output channels (output column phase, O)."""
    pairs = torch.einsum("pmkt,oiyt->pomiyk", _PAIR_TAPS.to(weight.device), weight.double())
    return pairs.reshape(2 * weight.shape[0], 2 * weight.shape[1], 3, 2).to(weight.dtype)


class ColumnPairConv(nn.Module):
    """An unpadded 3x3 conv with few output channels (a decoder's last, to RGB) run on column pairs
    (inference copies only; see `fastpath.pair_thin_convs`).

    oneDNN computes output channels in blocks of 16, so a 16->3 conv costs as much as a 16->16 one. In
    channels_last memory, viewing each pair of columns as one pixel of twice the channels is free; on that
    view one (3, 2) conv with twice the inputs and outputs gives both columns of each output pair: the same
    function, a third more multiply-adds, but 6 of 16 output lanes used instead of 3 (2-core Xeon, fp32,
    16->3 at 1280x720: 15.5 -> 10.5 ms; vgg's 64->3 59.5 -> 42.8 ms). Padded widths must be even: a decoder's
    output is 8x its input's width.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * conv.in_channels, 2 * conv.out_channels, (3, 2), dtype=conv.weight.dtype,
                              device=conv.weight.device).requires_grad_(False)
        self.conv.weight.copy_(column_pair_weights(conv.weight.detach()))
        self.conv.bias.copy_(conv.bias.detach().repeat(2))

    def forward(self, padded: torch.Tensor, relu: bool = False) -> torch.Tensor:
        n, channels, height, width = padded.shape
        if width % 2:
            raise ValueError(f"column pairs need an even padded width, got {width}")
        pairs = padded.permute(0, 2, 3, 1).reshape(n, height, width // 2, 2 * channels).permute(0, 3, 1, 2)
        out = _padded_conv_relu(self.conv, pairs) if relu else self.conv(pairs)
        n, channels2, height, half_width = out.shape
        return out.permute(0, 2, 3, 1).reshape(n, height, 2 * half_width, channels2 // 2).permute(0, 3, 1, 2)


class _Encoder(nn.Module):
    """Shared forward of the VGG-like encoders: a 1x1 colour conv, then groups of conv+ReLU blocks
    separated by 2x2 max-pools; the first ReLU of each group is relu1_1, relu2_1, relu3_1, relu4_1."""

    out_channels: int
    stages: tuple[tuple[str, ...], ...]
    colour_conv: str

    def features(self, x: torch.Tensor) -> Features:
        y = self._modules[self.colour_conv](x)
        taps = []
        for stage, names in enumerate(self.stages):
            if stage > 0:
                y = F.max_pool2d(y, 2, 2, ceil_mode=True)
            for position, name in enumerate(names):
                y = _conv_relu(self._modules[name], y)
                if position == 0:
                    taps.append(y)
        return Features(*taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).relu4_1


# --------------------------------------------------------------------------- normalised VGG-19
# Indices of naoto0804/pytorch-AdaIN's `vgg` Sequential: state-dict keys are "<index>.weight".
_VGG_CONVS = {"0": (3, 3, 1), "2": (3, 64, 3), "5": (64, 64, 3), "9": (64, 128, 3), "12": (128, 128, 3),
              "16": (128, 256, 3), "19": (256, 256, 3), "22": (256, 256, 3), "25": (256, 256, 3), "29": (256, 512, 3)}
_VGG_LAST_INDEX = 30  # relu4_1 in the full 53-module VGG


class VGGEncoder(_Encoder):
    """AdaIN's normalised VGG-19 up to relu4_1 (512 channels), pytorch-AdaIN key layout.

    Index 0 is a 1x1 conv that turns RGB [0, 1] into mean-subtracted BGR [0, 255] (Caffe convention).
    """

    out_channels = 512
    stages = (("2", "5"), ("9", "12"), ("16", "19", "22", "25"), ("29",))
    colour_conv = "0"

    def __init__(self) -> None:
        super().__init__()
        for name, (cin, cout, k) in _VGG_CONVS.items():
            self.add_module(name, nn.Conv2d(cin, cout, k))


# Indices of pytorch-AdaIN's `decoder` Sequential; a nearest 2x upsample comes before the convs marked True.
_VGG_DECODER = ((1, 512, 256, False), (5, 256, 256, True), (8, 256, 256, False), (11, 256, 256, False),
                (14, 256, 128, False), (18, 128, 128, True), (21, 128, 64, False), (25, 64, 64, True), (28, 64, 3, False))


class VGGDecoder(nn.Module):
    """The AdaIN decoder (mirror of the encoder, nearest upsampling, no ReLU after the last conv)."""

    upsampled_convs = frozenset(str(index) for index, *_, upsampled in _VGG_DECODER if upsampled)

    def __init__(self) -> None:
        super().__init__()
        for index, cin, cout, _ in _VGG_DECODER:
            self.add_module(str(index), nn.Conv2d(cin, cout, 3))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        y = t
        for index, _, _, upsampled in _VGG_DECODER[:-1]:
            block = _upsample_conv_relu if upsampled else _conv_relu
            y = block(self._modules[str(index)], y)
        last = self._modules[str(_VGG_DECODER[-1][0])]
        return last(_reflect_padded(y))


# --------------------------------------------------------------------------- cd16x
class CD16xEncoder(_Encoder):
    """Collaborative Distillation's 16x-pruned VGG-19 to relu4_1 (128 channels), its key layout.

    conv0 is the same RGB -> BGR-mean 1x1 conv as the VGG's; the `_aux` distillation heads in
    the original file are not part of the network.
    """

    out_channels = 128
    stages = (("conv11", "conv12"), ("conv21", "conv22"), ("conv31", "conv32", "conv33", "conv34"), ("conv41",))
    colour_conv = "conv0"
    _CHANNELS = {"conv0": (3, 3, 1), "conv11": (3, 16, 3), "conv12": (16, 16, 3), "conv21": (16, 32, 3),
                 "conv22": (32, 32, 3), "conv31": (32, 64, 3), "conv32": (64, 64, 3), "conv33": (64, 64, 3),
                 "conv34": (64, 64, 3), "conv41": (64, 128, 3)}

    def __init__(self) -> None:
        super().__init__()
        for name, (cin, cout, k) in self._CHANNELS.items():
            self.add_module(name, nn.Conv2d(cin, cout, k))


class CD16xDecoder(nn.Module):
    """Decoder for the cd16x features (mirror of the encoder; ReLU after the last conv too)."""

    # A nearest 2x upsample comes before the convs marked True.
    _LAYERS = (("conv41", 128, 64, False), ("conv34", 64, 64, True), ("conv33", 64, 64, False),
               ("conv32", 64, 64, False), ("conv31", 64, 32, False), ("conv22", 32, 32, True),
               ("conv21", 32, 16, False), ("conv12", 16, 16, True), ("conv11", 16, 3, False))
    upsampled_convs = frozenset(name for name, *_, upsampled in _LAYERS if upsampled)

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, _ in self._LAYERS:
            self.add_module(name, nn.Conv2d(cin, cout, 3))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        y = t
        for name, _, _, upsampled in self._LAYERS:
            block = _upsample_conv_relu if upsampled else _conv_relu
            y = block(self._modules[name], y)
        return y


ENCODERS: dict[str, type[nn.Module]] = {"vgg": VGGEncoder, "cd16x": CD16xEncoder}
DECODERS: dict[str, type[nn.Module]] = {"vgg": VGGDecoder, "cd16x": CD16xDecoder}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weight file safely (weights_only) onto the CPU and unwrap {'model': state_dict} files."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: weight file not found") from None
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise UserError(f"{path}: not a readable PyTorch weight file ({type(exc).__name__}); "
                        "fetch it again with `adain weights fetch`") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"{path}: does not hold a state dict of tensors")
    return data


def _adapt_encoder_keys(architecture: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept the files users have: cd16x with its `_aux` heads, the full 53-module VGG of pytorch-AdaIN."""
    if architecture == "cd16x":
        return {k: v for k, v in state.items() if "_aux" not in k}
    return {k: v for k, v in state.items() if not k.split(".")[0].isdigit() or int(k.split(".")[0]) <= _VGG_LAST_INDEX}


def build_network(kind: str, architecture: str, path: Path | None = None) -> nn.Module:
    """An encoder or decoder ('encoder'/'decoder') of an architecture, with weights from `path` if given."""
    table = ENCODERS if kind == "encoder" else DECODERS
    if architecture not in table:
        raise UserError(f"unknown architecture {architecture!r}; choose one of {', '.join(table)}")
    network = table[architecture]()
    if path is not None:
        state = load_state_dict(path)
        if kind == "encoder":
            state = _adapt_encoder_keys(architecture, state)
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise UserError(f"{path}: not a {architecture} {kind} weight file ({first[:160]})") from None
    return network.eval().requires_grad_(False)
