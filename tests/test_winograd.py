"""The Winograd F(4x4, 3x3) conv: the same function as the direct conv, only where it pays, one compiled graph."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from realtime import winograd
from realtime.engine import Stylizer
from realtime.fastpath import winograd_convs
from realtime.models import build_network
from realtime.winograd import WinogradConv, kernel_transform, worth_winograd


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("height, width", [(8, 12), (13, 22), (1, 1), (5, 4)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_conv3x3_equals_the_direct_conv(height, width, channels_last):
    """Any size (the last tiles are completed with zeros and cropped), either memory layout, a batch."""
    torch.manual_seed(height * width)
    conv = nn.Conv2d(24, 40, 3)
    padded = torch.randn(2, 24, height + 2, width + 2)
    if channels_last:
        padded = padded.contiguous(memory_format=torch.channels_last)
    out = WinogradConv(conv)(padded)
    with torch.no_grad():
        expected = conv(padded)
    assert out.shape == expected.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert _relative_error(out, expected) < 1e-4


@pytest.mark.parametrize("relu", [False, True])
def test_conv3x3_in_bands_of_one_tile_row_equals_the_direct_conv(relu, monkeypatch):
    """Every band boundary (one tile row per band), a cropped last row and column, the ReLU fused or not."""
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)
    torch.manual_seed(3)
    conv = nn.Conv2d(16, 8, 3)
    padded = torch.randn(2, 16, 19 + 2, 10 + 2).contiguous(memory_format=torch.channels_last)
    out = WinogradConv(conv)(padded, relu=relu)
    with torch.no_grad():
        expected = F.relu(conv(padded)) if relu else conv(padded)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert _relative_error(out, expected) < 1e-4
    if relu:
        assert (out >= 0).all() and (out == 0).any()


def test_conv3x3_in_float64_is_exact_up_to_rounding():
    """The transforms themselves are right (not merely close): in float64 the error is at rounding level."""
    conv = nn.Conv2d(8, 8, 3).double()
    padded = torch.randn(1, 8, 11, 9, dtype=torch.float64)
    out = WinogradConv(conv)(padded)
    with torch.no_grad():
        assert _relative_error(out, conv(padded)) < 1e-12


def test_kernel_transform_has_one_matrix_per_tile_position():
    weight = torch.randn(5, 3, 3, 3)
    assert kernel_transform(weight).shape == (36, 3, 5)
    assert kernel_transform(weight).dtype == weight.dtype


@pytest.mark.parametrize("conv, worth", [
    (nn.Conv2d(256, 256, 3), True),
    (nn.Conv2d(512, 256, 3), True),
    (nn.Conv2d(128, 128, 3), True),
    (nn.Conv2d(64, 128, 3), True),
    (nn.Conv2d(128, 64, 3), True),
    (nn.Conv2d(64, 64, 3), False),  # thin: in whole frames the transforms' passes cost what the products save
    (nn.Conv2d(32, 64, 3), False),
    (nn.Conv2d(256, 256, 3, padding=1), False),  # only the unpadded convs that follow an explicit pad
    (nn.Conv2d(256, 256, 3, stride=2), False),
    (nn.Conv2d(256, 256, 1), False),
    (nn.Conv2d(256, 256, 3, groups=2), False),
    (nn.Linear(256, 256), False),
])
def test_only_wide_plain_3x3_convs_are_worth_it(conv, worth):
    assert worth_winograd(conv) is worth


def test_winograd_convs_rewrites_the_wide_convs_of_a_copy_and_keeps_the_function():
    encoder = build_network("encoder", "vgg")  # random weights: only equality matters here
    rewritten = winograd_convs(encoder)
    replaced = {name for name, module in rewritten.named_children() if isinstance(module, WinogradConv)}
    assert replaced == {"9", "12", "16", "19", "22", "25", "29"}  # 64->128 and wider; 3->64, 64->64 stay
    assert not any(isinstance(module, WinogradConv) for module in encoder.children())
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        assert _relative_error(rewritten(x), encoder(x)) < 1e-4


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_cd16x_rewrites_only_its_128_channel_conv(kind):
    """cd16x's 64 <-> 128 conv (conv41 in both networks) takes the form; its 64-channel and thinner convs stay."""
    rewritten = winograd_convs(build_network(kind, "cd16x"))
    assert {name for name, module in rewritten.named_children() if isinstance(module, WinogradConv)} == {"conv41"}


def test_winograd_conv_compiles_as_one_graph():
    explanation = torch._dynamo.explain(WinogradConv(nn.Conv2d(16, 8, 3)))(torch.rand(1, 16, 9, 11))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0


@pytest.mark.parametrize("precision, expected", [("fp32", True), ("bf16", False)])
def test_the_engine_takes_the_winograd_form_for_fp32_on_cpus(precision, expected, weights_dir):
    stylizer = Stylizer(model="vgg", device="cpu", precision=precision)
    networks = (stylizer.encoder, stylizer.decoder)
    assert any(isinstance(m, WinogradConv) for network in networks for m in network.children()) is expected


def test_winograd_frames_agree_with_the_direct_convs(weights_dir):
    """A real vgg frame through the Winograd engine and through the plain networks: within one level."""
    stylizer = Stylizer(model="vgg", device="cpu", precision="fp32")
    encoder = build_network("encoder", "vgg", weights_dir / "adain-vgg" / "vgg.pth")
    decoder = build_network("decoder", "vgg", weights_dir / "adain-vgg" / "decoder.pth")
    torch.manual_seed(0)
    content = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        t = encoder(content)
        expected = decoder(t).clamp(0, 1)
        got = stylizer.decode(stylizer.encode(content.contiguous(memory_format=torch.channels_last)))
    assert (got.clamp(0, 1) - expected).abs().max().item() * 255 < 1.5
    assert F.mse_loss(got.clamp(0, 1), expected).item() < 1e-6


@pytest.mark.slow
def test_compiled_frames_call_the_winograd_operator_and_agree_with_eager(weights_dir):
    """Under torch.compile the banded conv runs as the registered operator (inductor calls it, does not trace
    it), and the compiled frame equals the eager one within rounding."""
    eager = Stylizer(model="vgg", device="cpu", precision="fp32")
    compiled = Stylizer(model="vgg", device="cpu", precision="fp32", compile=True)
    torch.manual_seed(0)
    frame = (torch.rand(64, 96, 3) * 255).to(torch.uint8)
    style = (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()
    expected = eager.stylize_uint8(frame, eager.prepare(style))
    compiled.stylize_uint8(frame, compiled.prepare(style))  # compiles
    with torch.profiler.profile() as profile:
        got = compiled.stylize_uint8(frame, compiled.prepare(style))
    assert any("winograd_conv3x3" in event.name for event in profile.events())
    assert (got.int() - expected.int()).abs().max().item() <= 2
