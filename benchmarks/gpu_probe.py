"""What a GPU machine offers the tool, and where vgg's frame time goes on it (issue 7).

    python benchmarks/gpu_probe.py                             # versions, card, matmul peak, NVENC/NVDEC through PyAV
    python benchmarks/gpu_probe.py --profile vgg,cd16x --size 1080p  # eager block variants A/B, then a kernel table

Prints plain text (the run is read as a log); run_gpu.sh calls both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime import models  # noqa: E402
from realtime.bench.machine import matmul_gflops  # noqa: E402
from realtime.bench.runner import (BenchSettings, frame_gflop, parse_size, synthetic_frame,  # noqa: E402
                                   time_frames)
from realtime.engine import Stylizer  # noqa: E402
from realtime.weights import WeightStore  # noqa: E402


def try_nvenc(codec: str, path: Path) -> str:
    """Encode 30 frames of 1280x720 with a hardware encoder through PyAV; 'ok N fps' or the error."""
    import av
    frame_rgb = synthetic_frame(720, 1280)
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=30)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            start = time.perf_counter()
            for index in range(30):
                frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, 30)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            return f"ok {30 / (time.perf_counter() - start):.0f} fps"
    except Exception as exc:  # noqa: BLE001 - the probe reports any failure as text
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def decode_fps(clip: Path, hwaccel: bool) -> str:
    """Frames per second decoding a clip to RGB on the CPU, or with NVDEC (frames downloaded)."""
    import av
    from av.codec.hwaccel import HWAccel
    try:
        options = {"hwaccel": HWAccel("cuda", allow_software_fallback=False)} if hwaccel else {}
        start = time.perf_counter()
        with av.open(str(clip), **options) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        return f"ok {len(frames) / (time.perf_counter() - start):.0f} fps ({len(frames)} frames)"
    except Exception as exc:  # noqa: BLE001
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def environment() -> None:
    props = torch.cuda.get_device_properties(0)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    info = {"gpu": props.name, "sms": props.multi_processor_count, "memory_gib": round(props.total_memory / 2 ** 30, 1),
            "nvidia_smi": smi, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "python": sys.version.split()[0],
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        info[f"matmul_8192_{name}_tflops"] = round(matmul_gflops(torch.device("cuda"), dtype, size=8192) / 1000, 1)
    print(json.dumps(info, indent=1))
    import av
    from av.codec.hwaccel import hwdevices_available
    print("pyav", av.__version__, "hwdevices", hwdevices_available(),
          {c: c in av.codecs_available for c in ("h264_nvenc", "hevc_nvenc", "h264_cuvid")})
    out = Path("/tmp/nvenc-probe")
    out.mkdir(exist_ok=True)
    for codec in ("h264_nvenc", "hevc_nvenc", "libx264"):
        print("encode", codec, try_nvenc(codec, out / f"{codec}.mp4"))
    shared = Path(os.environ.get("REALTIME_ADAIN_SHARED", ROOT.parent / "shared"))
    clip = shared / "media" / "video" / "bbb_1280x720_25fps_aac_5.1.mp4"
    for hwaccel in (False, True):
        print("decode", clip.name, "nvdec" if hwaccel else "cpu", decode_fps(clip, hwaccel))


def stylized_fps(stylizer: Stylizer, frame: torch.Tensor, prepared, frames: int = 50) -> float:
    """Frames per second of the engine's per-frame path on a frame already on the GPU."""
    timing = time_frames(lambda: stylizer.stylize_uint8(frame, prepared), stylizer.device,
                         BenchSettings(iters=frames, warmup=5))
    return timing.fps


def _reference_pad(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


VARIANTS = {
    "reflection_pad2d (NCHW out), conv, bias, ReLU": {"_reflect_pad1": _reference_pad,
                                                      "_cudnn_fuses_relu": lambda x: False},
    "channels_last pad, conv, bias, ReLU": {"_cudnn_fuses_relu": lambda x: False},
    "channels_last pad, cuDNN conv+bias+ReLU (shipped)": {},
}
"""Eager block variants compared in one process: each patches realtime.models' helpers for its run."""


def profile(models_to_run: list[str], size: str) -> None:
    """fp16 eager A/B of the padding and conv variants (CUDA graphs on), then the top kernels of the shipped path."""
    height, width = parse_size(size)
    frame = torch.from_numpy(synthetic_frame(height, width)).cuda()
    style = synthetic_frame(512, 512, seed=1)
    for model in models_to_run:
        gflop = frame_gflop(WeightStore().registry.model(model).architecture, height, width)
        for name, patches in VARIANTS.items():
            saved = {attr: getattr(models, attr) for attr in patches}
            try:
                for attr, function in patches.items():
                    setattr(models, attr, function)
                stylizer = Stylizer(model, "cuda", "fp16")
                fps = stylized_fps(stylizer, frame, stylizer.prepare(style))
                print(f"{model} {width}x{height} fp16 eager, {name}: {fps:.1f} fps, {gflop * fps / 1000:.1f} TFLOP/s")
            except Exception as exc:  # noqa: BLE001 - a variant that fails is reported, the others still run
                print(f"{model} {width}x{height} fp16 eager, {name}: failed: {type(exc).__name__}: {exc}"[:300])
            finally:
                for attr, function in saved.items():
                    setattr(models, attr, function)
    stylizer = Stylizer(models_to_run[0], "cuda", "fp16", cuda_graphs=False)
    prepared = stylizer.prepare(style)
    stylized_fps(stylizer, frame, prepared, frames=5)  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            stylizer.stylize_uint8(frame, prepared)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", metavar="M,...", help="A/B and profile these models instead of probing the machine")
    parser.add_argument("--size", default="1080p", help="frame size for --profile")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile.split(","), args.size)
    else:
        environment()


if __name__ == "__main__":
    main()
