"""The networks load the shared weight files with their exact layouts, and accept the upstream files users have."""

import math

import pytest
import torch
import torch.nn.functional as F

from realtime.errors import UserError
from realtime.models import (ColumnPairConv, UpsampledConv, VGGEncoder, build_network, interleave_phases, load_state_dict,
                             reflect_pad_channels_last)

FILES = {"vgg": ("adain-vgg/vgg.pth", "adain-vgg/decoder.pth"), "cd16x": ("cd16x/encoder_relu41.pth",
                                                                           "cd16x/decoder_relu41.pth")}


@pytest.mark.parametrize("arch", FILES)
def test_shared_files_load_strictly_and_give_relu4_1_shapes(arch, weights_dir):
    encoder = build_network("encoder", arch, weights_dir / FILES[arch][0])
    decoder = build_network("decoder", arch, weights_dir / FILES[arch][1])
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        feats = encoder.features(x)
        out = decoder(feats.relu4_1)
    channels = {"vgg": (64, 128, 256, 512), "cd16x": (16, 32, 64, 128)}[arch]
    for feat, c, scale in zip(feats, channels, (1, 2, 4, 8)):
        assert feat.shape == (1, c, 64 // scale, 48 // scale)
    assert torch.equal(feats.relu4_1, encoder(x))
    assert out.shape == x.shape
    # the weights really came from the file: every parameter equals the file's tensor
    state = load_state_dict(weights_dir / FILES[arch][0])
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, state[name])


def test_first_conv_maps_rgb_to_caffe_bgr(weights_dir):
    encoder = build_network("encoder", "vgg", weights_dir / "adain-vgg/vgg.pth")
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0
    bgr = encoder._modules["0"](red).flatten()
    assert bgr[2] > 100 and abs(bgr[0] + 103.939) < 1  # red lands in the last (R of BGR) channel


def test_full_53_module_pytorch_adain_vgg_is_truncated_to_relu4_1(tmp_path, weights_dir):
    state = load_state_dict(weights_dir / "adain-vgg/vgg.pth")
    full = dict(state)
    for index in (32, 35, 38, 42, 45, 48, 51):  # the convs after relu4_1 in pytorch-AdaIN's vgg
        full[f"{index}.weight"] = torch.randn(512, 512, 3, 3)
        full[f"{index}.bias"] = torch.randn(512)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(full, path)
    encoder = build_network("encoder", "vgg", path)
    reference = build_network("encoder", "vgg", weights_dir / "adain-vgg/vgg.pth")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(encoder(x), reference(x))


def test_wrong_layout_and_garbage_files_are_user_errors(tmp_path, weights_dir):
    with pytest.raises(UserError, match="not a vgg encoder weight file"):
        build_network("encoder", "vgg", weights_dir / "cd16x/encoder_relu41.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a pickle" * 10)
    with pytest.raises(UserError, match="garbage.pth: not a readable PyTorch weight file"):
        build_network("decoder", "cd16x", garbage)
    with pytest.raises(UserError, match="not found"):
        build_network("decoder", "cd16x", tmp_path / "missing.pth")


def test_state_dict_keys_follow_pytorch_adain_indices():
    keys = set(VGGEncoder().state_dict())
    assert {"0.weight", "2.weight", "29.weight", "29.bias"} <= keys and "30.weight" not in keys


@pytest.mark.parametrize("shape", [(1, 16, 5, 7), (2, 3, 2, 2)])
def test_channels_last_reflection_pad_equals_reflect_padding(shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    padded = reflect_pad_channels_last(x)
    assert torch.equal(padded, F.pad(x, (1, 1, 1, 1), mode="reflect"))
    assert padded.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (2, 8, 2, 3), (1, 8, 5, 7)])
def test_upsampled_conv_equals_upsample_then_padded_conv(shape):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], 6, 3).double()
    x = torch.randn(shape, dtype=torch.float64)
    upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
    expected = F.relu(conv(F.pad(upsampled, (1, 1, 1, 1), mode="reflect")))
    with torch.no_grad():
        got = UpsampledConv(conv)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_interleave_phases_takes_each_phase_from_its_shifted_window():
    windows = torch.randn(2, 4 * 5, 4, 5).contiguous(memory_format=torch.channels_last)
    out = interleave_phases(windows)
    phases = windows.view(2, 2, 2, 5, 4, 5)  # (row phase, column phase 1 then 0, channel)
    for row in range(2):
        for column in range(2):
            assert torch.equal(out[:, :, row::2, column::2],
                               phases[:, row, 1 - column, :, row:row + 3, column:column + 4])
    assert out.shape == (2, 5, 6, 8) and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (2, 8, 2, 3), (1, 8, 5, 7)])
def test_padded_output_writes_the_reflection_padded_output(shape):
    """The phases written straight into a padded buffer are the output interleaved, then padded: the same
    numbers, in channels_last memory, under no_grad and under inference mode."""
    torch.manual_seed(1)
    block = UpsampledConv(torch.nn.Conv2d(shape[1], 6, 3).double())  # float64: the same conv kernel in both modes
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = block.padded_output(x)
        assert torch.equal(expected, F.pad(block(x), (1, 1, 1, 1), mode="reflect"))
    with torch.inference_mode():
        got = block.padded_output(x)
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("method", ["forward", "padded_output"])
def test_upsampled_conv_compiles_as_one_graph(method):
    """torch.compile must see the whole block (the Tensor.as_strided method, and storage_offset(), split it);
    the padded output is one operator in that graph."""
    block = UpsampledConv(torch.nn.Conv2d(8, 6, 3))
    explanation = torch._dynamo.explain(getattr(block, method))(
        torch.rand(1, 8, 5, 7).contiguous(memory_format=torch.channels_last))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["forward", "padded_output"])
@pytest.mark.parametrize("inductor", [{"freezing": False}, {"freezing": False, "disable_padding_cpu": False}],
                         ids=["plain", "padded-strides"])
def test_compiled_upsampled_conv_equals_eager(inductor, method):
    """Compiled with inductor's CUDA settings (no freezing; inductor's GPU stride padding forced on the CPU), the
    block gives what it gives eagerly. A traced strided view of the windows read the wrong memory when compiled
    so: garbage for vgg and an illegal memory access for cd16x on an H100."""
    torch.manual_seed(4)
    block = UpsampledConv(torch.nn.Conv2d(64, 16, 3)).to(memory_format=torch.channels_last)

    def after_relu(x: torch.Tensor) -> torch.Tensor:  # the windows are made inside the compiled graph
        return getattr(block, method)(F.relu(x))

    x = torch.randn(1, 64, 17, 25).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    with torch.no_grad(), torch._inductor.config.patch(inductor):
        expected = after_relu(x)
        got = torch.compile(after_relu)(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_upsampled_conv_has_four_ninths_of_the_multiply_adds():
    conv = torch.nn.Conv2d(8, 6, 3)
    folded = UpsampledConv(conv).conv
    assert folded.weight.shape == (24, 8, 2, 2)
    assert folded.weight.numel() * 9 == conv.weight.numel() * 4 * 4


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(1, 16, 3, 4), (2, 16, 7, 10), (1, 64, 6, 18)])
def test_column_pair_conv_equals_the_conv(shape, relu):
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(shape[1], 3, 3).double()
    padded = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        expected = F.relu(conv(padded)) if relu else conv(padded)
        got = ColumnPairConv(conv)(padded, relu=relu)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_column_pair_conv_on_the_fused_inference_path_stays_channels_last():
    """Under inference mode on a CPU the pair conv is one oneDNN conv+ReLU on a free view of the input, and
    its output is a free view back: channels_last in, channels_last out, the same numbers as the plain conv."""
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(16, 3, 3).to(memory_format=torch.channels_last)
    paired = ColumnPairConv(conv).to(memory_format=torch.channels_last)
    padded = torch.randn(1, 16, 34, 66).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = paired(padded, relu=True)
        expected = F.relu(conv(padded))
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_column_pair_conv_refuses_an_odd_width():
    with pytest.raises(ValueError, match="even padded width, got 9"):
        ColumnPairConv(torch.nn.Conv2d(16, 3, 3))(torch.rand(1, 16, 6, 9))


def test_column_pair_conv_compiles_as_one_graph():
    explanation = torch._dynamo.explain(ColumnPairConv(torch.nn.Conv2d(16, 3, 3)))(
        torch.rand(1, 16, 10, 12).contiguous(memory_format=torch.channels_last), relu=True)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0


@pytest.mark.gpu
@pytest.mark.parametrize("arch", FILES)
def test_cuda_inference_blocks_equal_the_reference_path(arch, weights_dir):
    """Under inference mode on CUDA the padding takes the channels_last slice-copy path; under no_grad the
    reference reflection_pad2d: the same numbers (fp32, TF32 off so that only the padding differs)."""
    encoder = build_network("encoder", arch, weights_dir / FILES[arch][0]).cuda().to(memory_format=torch.channels_last)
    decoder = build_network("decoder", arch, weights_dir / FILES[arch][1]).cuda().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 96, 136, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False, deterministic=True):
        with torch.no_grad():
            reference = decoder(encoder(x))
        with torch.inference_mode():
            fast = decoder(encoder(x))
    assert torch.allclose(fast, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_fused_conv_relu_matches_conv_then_relu(dtype, weights_dir):
    """The cuDNN conv+bias+ReLU call of the inference path against the three separate operations, at a frame
    size other than the 1080p that the speed A/B ran. Both are judged against fp32 (TF32 off): they round at
    different points, and through the 17 layers of encoder and decoder bf16's 8-bit mantissa makes them differ
    by up to 8 % of the range (seen on an H100), so the fused call must be as accurate as the separate ones and
    within 30 dB of fp32, where a wrong argument (padding, stride, bias) would give noise."""
    encoder = build_network("encoder", "cd16x", weights_dir / FILES["cd16x"][0])
    decoder = build_network("decoder", "cd16x", weights_dir / FILES["cd16x"][1])
    encoder, decoder = (n.to("cuda", memory_format=torch.channels_last) for n in (encoder, decoder))
    x = torch.rand(1, 3, 72, 120, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False), torch.no_grad():
        exact = decoder(encoder(x))
    encoder, decoder, x = (t.to(dtype) for t in (encoder, decoder, x))
    with torch.no_grad():
        separate = decoder(encoder(x)).float()
    with torch.inference_mode():
        fused = decoder(encoder(x)).float()
    assert torch.isfinite(fused).all()
    mean_error = {name: (y - exact).abs().mean().item() for name, y in (("separate", separate), ("fused", fused))}
    assert mean_error["fused"] <= 1.5 * mean_error["separate"], mean_error
    assert 10 * math.log10(exact.abs().max().item() ** 2 / (fused - exact).square().mean().item()) >= 30
