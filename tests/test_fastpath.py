"""The per-frame fast path: the colour-conv fold is exact, the fast path equals the general one, the fused
CPU conv+ReLU equals the plain one, torch.compile agrees, and the runtime helpers behave. CUDA graph and
pinned-transfer tests are marked gpu (skipped without one)."""

import logging
import threading

import numpy as np
import pytest
import torch

from realtime import models, runtime
from realtime.engine import StyleControls, Stylizer
from realtime.fastpath import FramePath, fold_colour_conv, fold_upsampling, pair_thin_convs
from realtime.frame_workers import FrameWorkers
from realtime.images import frames_to_tensor, read_image, resize_to, tensor_to_frames
from realtime.models import ColumnPairConv, UpsampledConv, build_network
from realtime.weights import WeightStore

from metrics import psnr


@pytest.fixture(scope="module")
def cup(media):
    return resize_to(read_image(media / "content" / "indoor_coffee_cup_600x400.png").rgb, 200, 136)


@pytest.fixture(scope="module")
def style(media):
    return media / "styles" / "munch_the_scream.jpg"


@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_folding_the_colour_conv_keeps_the_function(arch):
    store = WeightStore()
    encoder = build_network("encoder", arch, store.resolve(store.registry.model(arch).encoder)).double()
    folded = fold_colour_conv(encoder)
    x = torch.rand(2, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        expected, got = encoder.features(x), folded.features(x)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in encoder.parameters()) - 12


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])  # inference: the padded-buffer writes
@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_folding_the_upsampling_keeps_the_function(arch, mode):
    store = WeightStore()
    decoder = build_network("decoder", arch, store.resolve(store.registry.model(arch).decoder)).double()
    folded = fold_upsampling(decoder)
    assert {name for name, m in folded.named_children() if isinstance(m, UpsampledConv)} == decoder.upsampled_convs
    assert len(decoder.upsampled_convs) == 3
    t = torch.rand(2, decoder._modules[next(iter(decoder._modules))].in_channels, 5, 7, dtype=torch.float64)
    with mode():
        expected, got = decoder(t), folded(t)
    assert got.shape == (2, 3, 40, 56)
    assert torch.allclose(expected, got, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("arch, last_conv", [("vgg", "28"), ("cd16x", "conv11")])
def test_pairing_the_last_conv_keeps_the_function(arch, last_conv, mode):
    """Only the conv to RGB has few enough outputs; the folded decoder with it paired is the same function."""
    store = WeightStore()
    decoder = fold_upsampling(build_network("decoder", arch, store.resolve(store.registry.model(arch).decoder)))
    decoder = decoder.double()
    paired = pair_thin_convs(decoder)
    assert {name for name, m in paired.named_children() if isinstance(m, ColumnPairConv)} == {last_conv}
    t = torch.rand(2, {"vgg": 512, "cd16x": 128}[arch], 5, 7, dtype=torch.float64)
    with mode():
        expected, got = decoder(t), paired(t)
    assert got.shape == (2, 3, 40, 56)
    assert torch.allclose(expected, got, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("precision, paired", [("fp32", True), ("bf16", False)])
def test_the_stylizer_pairs_the_last_conv_in_fp32_on_cpus(precision, paired):
    decoder = Stylizer("cd16x", "cpu", precision).decoder
    assert isinstance(decoder.conv11, ColumnPairConv) is paired


@pytest.mark.parametrize("device, precision, arch, folded_convs", [
    ("cpu", "fp32", "vgg", {"25", "18", "5"}), ("cpu", "bf16", "cd16x", {"conv34", "conv22", "conv12"}),
    pytest.param("cuda", "fp16", "vgg", {"25", "18", "5"}, marks=pytest.mark.gpu),
    pytest.param("cuda", "fp16", "cd16x", {"conv34", "conv22", "conv12"}, marks=pytest.mark.gpu)])
def test_the_stylizer_folds_the_upsampling_blocks_measured_faster_on_its_device(device, precision, arch,
                                                                               folded_convs):
    """Every block, on a CPU and on CUDA, where the fold was measured faster; a width limit folds fewer."""
    in_use = Stylizer(arch, device, precision).decoder
    assert {name for name, m in in_use.named_children() if isinstance(m, UpsampledConv)} == folded_convs
    thin = fold_upsampling(build_network("decoder", arch), max_channels=64)
    assert len([m for m in thin.children() if isinstance(m, UpsampledConv)]) == {"vgg": 1, "cd16x": 3}[arch]


@pytest.mark.parametrize("device, dtype", [
    ("cpu", torch.bfloat16), pytest.param("cuda", torch.float16, marks=pytest.mark.gpu)])
@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_folded_upsampling_on_the_fused_half_path_stays_close(arch, device, dtype):
    """Under inference mode in half precision the blocks run as fused oneDNN (CPU) or cuDNN (CUDA) calls on
    channels_last tensors; the folded weights are rounded once, so the two decoders differ only by rounding."""
    store = WeightStore()
    decoder = build_network("decoder", arch, store.resolve(store.registry.model(arch).decoder))
    folded = fold_upsampling(decoder).to(device, dtype, memory_format=torch.channels_last)
    decoder = decoder.to(device, dtype, memory_format=torch.channels_last)
    t = torch.rand(1, decoder._modules[next(iter(decoder._modules))].in_channels, 9, 13)
    t = t.to(device, dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected, got = decoder(t).float(), folded(t)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert (got.float() - expected).abs().max() <= 0.02 * expected.abs().max()


def test_fast_path_equals_the_general_path(cup, style):
    stylizer = Stylizer("cd16x", "cpu", "bf16")
    prepared = stylizer.prepare(style, StyleControls(alpha=0.7))
    frames = torch.from_numpy(np.stack([cup, cup[::-1].copy()]))
    assert stylizer._plain(prepared, *frames.shape[1:3])
    fast = stylizer.stylize_uint8(frames, prepared)
    with torch.inference_mode():
        general = tensor_to_frames(stylizer.stylize_images(frames_to_tensor(frames, stylizer.dtype), prepared))
    assert fast.shape == frames.shape
    assert (fast.int() - general.int()).abs().max() <= 1


def test_fused_conv_relu_equals_conv_then_relu(cup):
    store = WeightStore()
    decoder = build_network("decoder", "cd16x", store.resolve(store.registry.model("cd16x").decoder))
    t = torch.rand(1, 128, 17, 25).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = decoder(t)
    with torch.inference_mode(), torch.profiler.profile() as profile:
        fused = decoder(t)
    assert any("_convolution_pointwise" in event.name for event in profile.events())
    assert torch.allclose(fused, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("device,precision,arch", [
    ("cpu", "bf16", "cd16x"), pytest.param("cuda", "fp16", "vgg", marks=pytest.mark.gpu)])
def test_compiled_path_agrees_with_eager(device, precision, arch, cup, style, caplog):
    """torch.compile (CPU: inductor, freezing, C++ wrapper): the same picture within rounding, also from two
    frame workers at once (one thread each), with inductor's settings back as they were after each call;
    each compilation is announced (the first frame of a size waits for it); and a new alpha is a new
    input, not a recompile with the old value baked in."""
    caplog.set_level(logging.INFO, logger="realtime.fastpath")
    eager = Stylizer(arch, device, precision)
    compiled = Stylizer(arch, device, precision, compile=True)
    a = eager.stylize(cup, eager.prepare(style))
    b = compiled.stylize(cup, compiled.prepare(style))
    assert psnr(a, b) >= 35
    profiling = threading.Lock()  # torch's profiler is process-wide: two at once tripped its internal assert

    def profiled(frame: np.ndarray) -> tuple[np.ndarray, set[str]]:
        compiled.stylize(frame, compiled.prepare(style))  # a new thread count compiles (dynamo guards on it)
        with profiling, torch.profiler.profile() as profile:
            out = compiled.stylize(frame, compiled.prepare(style))
        return out, {event.name for event in profile.events()}

    workers = FrameWorkers(profiled, compiled.frames_in_flight(*cup.shape[:2]), compiled.threads)
    try:
        in_flight = [workers.submit(cup) for _ in range(4)]
        results = [future.result()[0] for future in in_flight]
    finally:
        workers.close()
    assert all(psnr(out, b) >= 45 for out, _ in results)
    if device == "cpu":  # frozen like the first graph: pre-packed oneDNN convs, no ATen convolution calls
        assert not any("aten::convolution" in names for _, names in results)
    assert not torch._inductor.config.freezing and not torch._inductor.config.cpp_wrapper
    announced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compiling for input")]
    assert 1 <= len(announced) <= 2  # the caller's thread count, and the workers' where it differs
    caplog.clear()
    again = compiled.stylize(cup, compiled.prepare(style, StyleControls(alpha=0.5)))
    assert np.abs(again.astype(np.float64) - b).mean() > 1
    assert not any(r.getMessage().startswith("compiling") for r in caplog.records)


def test_thread_count_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the defaults apply where the user set no count
    before = torch.get_num_threads()
    try:
        assert runtime.configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert runtime.configure_cpu_threads(None, "cpu") == runtime.default_cpu_threads() == torch.get_num_threads()
        # networks on a CUDA GPU leave the host only frame copies: one thread, unless the user asks
        assert runtime.configure_cpu_threads(None, "cuda") == runtime.CUDA_HOST_THREADS == torch.get_num_threads()
        assert runtime.configure_cpu_threads(2, "cuda") == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert 1 <= runtime.default_cpu_threads() <= len(runtime.usable_cpus())
    assert runtime.physical_core_count([0]) == 1
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert runtime.cgroup_cpu_limit(quota) is None
    quota.write_text("150000 100000\n")
    assert runtime.cgroup_cpu_limit(quota) == 1.5
    with pytest.raises(ValueError):
        runtime.configure_cpu_threads(0)


def test_cpu_transfers_pass_frames_through_and_memory_is_known():
    frames = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    assert runtime.upload(frames, torch.device("cpu")) is frames
    assert torch.equal(runtime.download(frames), frames)
    assert runtime.available_memory(torch.device("cpu")) > 2 ** 20


def test_cuda_headroom_is_capped_by_the_process_memory_fraction():
    gib = 2 ** 30
    # no cap below the card: free memory plus the allocator's unused cache
    assert runtime.cuda_headroom(free=70 * gib, reserved=2 * gib, allocated=1 * gib, cap=80 * gib) == 71 * gib
    # capped to a smaller card: what is allocated counts against the cap, however much the device has free
    assert runtime.cuda_headroom(free=70 * gib, reserved=2 * gib, allocated=1 * gib, cap=8 * gib) == 7 * gib
    assert runtime.cuda_headroom(free=70 * gib, reserved=9 * gib, allocated=9 * gib, cap=8 * gib) == 0


# ------------------------------------------------------------------------------- CUDA (issue 7 runs these)
@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_and_is_captured_once(cup, style):
    graphed = Stylizer("cd16x", "cuda", "fp16")
    eager = Stylizer("cd16x", "cuda", "fp16", cuda_graphs=False)
    frames = torch.from_numpy(cup)
    outs = [graphed.stylize_uint8(frames, graphed.prepare(style)) for _ in range(4)]
    reference = eager.stylize_uint8(frames, eager.prepare(style))
    assert len(graphed._frames_path._graphs) == 1
    for out in outs:
        assert (out.int() - reference.int()).abs().max() <= 1
    assert outs[-1].data_ptr() != outs[-2].data_ptr()  # outputs are copies, not the graph's static buffer


@pytest.mark.gpu
def test_cuda_pinned_transfers_round_trip(cup):
    host = torch.from_numpy(cup)
    device = runtime.upload(host, torch.device("cuda"))
    back = runtime.download(device)
    assert device.is_cuda and back.is_pinned() and torch.equal(back, host)


def test_frame_path_compiles_to_one_graph_with_the_channels_last_padding(monkeypatch):
    """The CUDA padding branch (simulated on the CPU by dropping its device check) must not split the compiled
    frame path: a graph break per block halved vgg's compiled speed on an H100."""
    monkeypatch.setattr(models, "_pads_channels_last",
                        lambda x: torch.is_inference_mode_enabled() and x.is_contiguous(memory_format=torch.channels_last))
    encoder = build_network("encoder", "cd16x").to(memory_format=torch.channels_last)
    decoder = build_network("decoder", "cd16x").to(memory_format=torch.channels_last)
    path = FramePath(encoder, decoder, torch.float32)
    graphs = []

    def count_graphs(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    args = (torch.randint(0, 256, (1, 32, 48, 3), dtype=torch.uint8), torch.zeros(1, 128, 1, 1),
            torch.ones(1, 128, 1, 1), torch.tensor(1.0))
    with torch.inference_mode():
        eager = path(*args)  # takes the slice-copy padding
        compiled = torch.compile(path, backend=count_graphs, dynamic=False)(*args)
    assert len(graphs) == 1
    assert (eager.int() - compiled.int()).abs().max() <= 1
