"""Precision paths: fp32 and bf16 agree, nothing overflows at 1080p, the fp16 probe and its fallback,
and bf16 chosen from what the CPU can do. CUDA paths are marked gpu (skipped without one)."""

import json
import math
from pathlib import Path

import pytest
import torch

from realtime import adain as A, models
from realtime.engine import Stylizer, cpu_has_native_bf16, select_precision
from realtime.images import read_image, resize_to
from realtime.models import build_network
from realtime.precision import (FP16_MAX, HEADROOM, cpu_bf16_speedup, fp16_probe, remembered_bf16_speedup,
                                safe_half_precision)
from realtime.weights import WeightStore

from metrics import psnr

GPU = pytest.mark.gpu


@pytest.fixture(scope="module")
def dune(media):
    return read_image(media / "content" / "landscape_dune_grass_sea_1600x1000.jpg").rgb


@pytest.fixture(scope="module")
def style(media):
    return media / "styles" / "kandinsky_composition_vii.jpg"


def networks(arch: str):
    store = WeightStore()
    entry = store.registry.model(arch)
    return (build_network("encoder", arch, store.resolve(entry.encoder)),
            build_network("decoder", arch, store.resolve(entry.decoder)))


@pytest.mark.parametrize("device,precision,width,height", [
    ("cpu", "bf16", 384, 240), pytest.param("cuda", "fp16", 768, 480, marks=GPU)])
@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_half_precision_agrees_with_fp32_within_30_db(arch, device, precision, width, height, dune, style):
    """Stated tolerance: PSNR >= 30 dB between the fp32 and the bf16 (CPU) / fp16 (CUDA) paths on a shared photo."""
    content = resize_to(dune, width, height)
    fp32 = Stylizer(arch, device, "fp32").stylize(content, style)
    half = Stylizer(arch, device, precision).stylize(content, style)
    assert psnr(half, fp32) >= 30


@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_no_inf_or_nan_at_1080p_in_bf16(arch, dune, style):
    stylizer = Stylizer(arch, "cpu", "bf16", tile=0)
    frame = torch.from_numpy(resize_to(dune, 1920, 1080)).permute(2, 0, 1)[None].float().div(255)
    with torch.inference_mode():
        padded = frame.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        t = A.adain(stylizer.encode(padded), stylizer.prepare(style).mixed)
        raw = stylizer.decode(t)
    assert raw.shape == (1, 3, 1080, 1920)
    assert torch.isfinite(t).all() and torch.isfinite(raw).all()
    assert raw.float().std() > 0.05  # a real picture, not a flat or saturated one


@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
def test_fp16_probe_finds_the_shipped_networks_safe(arch):
    encoder, decoder = networks(arch)
    result = fp16_probe(encoder, decoder, torch.device("cpu"), sizes=((128, 192),))
    assert result.safe and 1.0 < result.peak < FP16_MAX / HEADROOM
    assert result.layer.startswith(("encoder.", "decoder."))


def test_fp16_probe_sees_every_conv_where_inference_mode_would_fuse_them(monkeypatch):
    """The fused conv+ReLU of the inference path skips the Conv2d modules' hooks: the probe must not take it
    (simulated on the CPU by fusing whenever inference mode is on)."""
    encoder, decoder = networks("cd16x")
    expected = fp16_probe(encoder, decoder, torch.device("cpu"), sizes=((64, 64),))
    monkeypatch.setattr(models, "_fuses_relu", lambda x: torch.is_inference_mode_enabled())
    assert fp16_probe(encoder, decoder, torch.device("cpu"), sizes=((64, 64),)) == expected


def test_fp16_probe_catches_overflow_and_auto_falls_back():
    encoder, decoder = networks("cd16x")
    with torch.no_grad():
        decoder.conv34.weight.mul_(5000.0)  # drives the decoder's activations past fp16's range
    result = fp16_probe(encoder, decoder, torch.device("cpu"), sizes=((64, 64),))
    assert not result.safe and result.layer.startswith("decoder.")
    assert safe_half_precision(encoder, decoder, torch.device("cpu"), sizes=((64, 64),)) == torch.bfloat16


def test_probe_results_are_remembered_by_key(tmp_path):
    encoder, decoder = networks("cd16x")
    memo = tmp_path / "fp16-probe.json"
    cpu = torch.device("cpu")
    assert safe_half_precision(encoder, decoder, cpu, sizes=((64, 64),), memo=memo, key="a") == torch.float16
    assert json.loads(memo.read_text())["a"]["layer"].startswith(("encoder.", "decoder."))
    memo.write_text(json.dumps({"a": {"peak": FP16_MAX, "layer": "decoder.planted", "size": [64, 64]}}))
    assert safe_half_precision(encoder, decoder, cpu, sizes=((64, 64),), memo=memo, key="a") == torch.bfloat16
    memo.write_text("not json")  # a damaged memo means a fresh probe, not a failure
    assert safe_half_precision(encoder, decoder, cpu, sizes=((64, 64),), memo=memo, key="a") == torch.float16


def test_auto_precision_follows_the_cpu():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if flags:
        assert cpu_has_native_bf16() == (" avx512_bf16" in flags or " amx_bf16" in flags)
    cpu = torch.device("cpu")
    native = cpu_has_native_bf16()
    # bf16 only where the CPU has it natively and the probe finds it faster than fp32
    assert select_precision("auto", cpu, bf16_speedup=lambda: 2.0) == (torch.bfloat16 if native else torch.float32)
    assert select_precision("auto", cpu, bf16_speedup=lambda: 0.5) == torch.float32
    chosen = Stylizer("cd16x", "cpu", "auto").dtype  # with the real probe: either, where bf16 is native
    assert chosen in ((torch.bfloat16, torch.float32) if native else (torch.float32,))


def test_the_bf16_probe_times_both_precisions():
    speedup = cpu_bf16_speedup(repeats=2, channels=16, side=16)
    assert math.isfinite(speedup) and speedup > 0


def test_the_bf16_probe_is_measured_once_per_cpu_and_remembered(tmp_path):
    """The same command must not switch precision (and frames) because one probe met a busy moment."""
    memo = tmp_path / "bf16-probe.json"
    measured = remembered_bf16_speedup(memo)
    assert math.isfinite(measured) and measured > 0
    (key, kept), = json.loads(memo.read_text()).items()
    assert kept == measured and f"threads={torch.get_num_threads()}" in key
    memo.write_text(json.dumps({key: 7.5}))  # what was remembered is used, not measured again
    assert remembered_bf16_speedup(memo) == 7.5
    memo.write_text(json.dumps({key: "damaged"}))
    assert remembered_bf16_speedup(memo) not in (7.5, "damaged")
    assert json.loads(memo.read_text())[key] > 0


# ------------------------------------------------------------------------------- CUDA (issue 7 runs these)
@pytest.mark.gpu
@pytest.mark.parametrize("arch", ["vgg", "cd16x"])
@pytest.mark.parametrize("size", [(1080, 1920), (2160, 3840)])
def test_cuda_fp16_has_no_inf_or_nan_at_1080p_and_4k(arch, size, dune, style):
    stylizer = Stylizer(arch, "cuda", "fp16")
    frame = torch.from_numpy(resize_to(dune, size[1], size[0])).permute(2, 0, 1)[None].cuda().half().div(255)
    with torch.inference_mode():
        t = A.adain(stylizer.encode(frame.contiguous(memory_format=torch.channels_last)),
                    stylizer.prepare(style).mixed)
        raw = stylizer.decode(t)
    assert torch.isfinite(raw).all() and raw.float().std() > 0.05


@pytest.mark.gpu
def test_cuda_auto_precision_probes_fp16():
    stylizer = Stylizer("vgg", "cuda", "auto")
    assert stylizer.dtype in (torch.float16, torch.bfloat16, torch.float32)
    encoder, decoder = networks("vgg")
    assert fp16_probe(encoder, decoder, torch.device("cuda")).safe == (stylizer.dtype == torch.float16)
