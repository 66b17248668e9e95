"""What a GPU machine offers the tool, and where vgg's frame time goes on it (issue 7).

    python benchmarks/gpu_probe.py                             # versions, card, matmul peak, NVENC/NVDEC through PyAV
    python benchmarks/gpu_probe.py --profile vgg,cd16x --size 1080p  # eager block variants A/B, then a kernel table
    python benchmarks/gpu_probe.py --fold vgg,cd16x --sizes 720p,1080p,4k --compile-size 1080p
                                            # the decoder's upsampling blocks as they are against folded, A/B
    python benchmarks/gpu_probe.py --fold vgg --sizes 512 --device cpu --precision fp32   # the same on a CPU
    python benchmarks/gpu_probe.py --winograd vgg --sizes 512 --compile-size 512 --device cpu --precision fp32
                                            # the wide convs direct against Winograd (engine.WINOGRAD), A/B

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

from realtime import engine, models  # noqa: E402
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


def stylized_fps(stylizer: Stylizer, frame: torch.Tensor, prepared, frames: int = 50,
                 max_seconds: float = 10.0) -> float:
    """Frames per second of the engine's per-frame path on a frame already on the device."""
    timing = time_frames(lambda: stylizer.stylize_uint8(frame, prepared), stylizer.device,
                         BenchSettings(iters=frames, warmup=5, max_seconds=max_seconds))
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


def engine_ab(setting: str, variants: list[tuple[str, object]], models_to_run: list[str], sizes: list[str],
              compile_size: str | None, rounds: int = 3, device: str = "cuda", precision: str = "fp16") -> None:
    """A/B of one engine setting (`engine.<setting>`, e.g. FOLD_UPSAMPLING_UP_TO or WINOGRAD) set to each
    variant's value while its Stylizer is built, the first variant the reference: eager (with CUDA graphs on
    a GPU) at each size, and compiled at `compile_size`. The Stylizers are built side by side and timed in
    turn each round; each variant's ratio to the reference and its frames' largest difference from the
    reference's are printed."""
    style = synthetic_frame(512, 512, seed=1)
    cases = [(size, False) for size in sizes] + ([(compile_size, True)] if compile_size else [])
    reference = variants[0][0]
    saved = getattr(engine, setting)
    for model in models_to_run:
        for size, compiled in cases:
            height, width = parse_size(size)
            frame = torch.from_numpy(synthetic_frame(height, width)).to(device)
            label = f"{model} {width}x{height} {device} {precision} {'compiled' if compiled else 'eager'}"
            built = {}
            try:
                for name, value in variants:
                    setattr(engine, setting, value)
                    stylizer = Stylizer(model, device, precision, compile=compiled, frame_workers=1)
                    built[name] = (stylizer, stylizer.prepare(style))
                frames = {name: stylizer.stylize_uint8(frame, prepared).int()
                          for name, (stylizer, prepared) in built.items()}
                fps: dict[str, list[float]] = {name: [] for name in built}
                for _ in range(rounds):
                    for name, (stylizer, prepared) in built.items():
                        fps[name].append(stylized_fps(stylizer, frame, prepared, frames=60, max_seconds=1.5))
                report = [f"{reference} {' / '.join(f'{v:.2f}' for v in fps[reference])} fps"]
                for name in list(built)[1:]:
                    ratios = [f / p for f, p in zip(fps[name], fps[reference])]
                    difference = (frames[name] - frames[reference]).abs()
                    report.append(f"{name} {' / '.join(f'{v:.2f}' for v in fps[name])} fps, ratio "
                                  f"{min(ratios):.3f}-{max(ratios):.3f}, frames differ by max "
                                  f"{difference.max().item()} levels, mean {difference.float().mean().item():.3f}")
                print(f"{label}: " + "; ".join(report), flush=True)
            except Exception as exc:  # noqa: BLE001 - a case that fails is reported, the others still run
                print(f"{label}: failed: {type(exc).__name__}: {exc}"[:300], flush=True)
            finally:
                setattr(engine, setting, saved)


def fold_variants(device: str, max_channels: int | None) -> list[tuple[str, object]]:
    """The decoder's upsampling blocks as they are, folded (`fastpath.fold_upsampling`) as the device's default
    folds them, and with `max_channels` also folded up to that width."""
    variants: list[tuple[str, object]] = [("plain", {}), ("folded", engine.FOLD_UPSAMPLING_UP_TO)]
    if max_channels:
        variants.append((f"folded<={max_channels}", {device: max_channels}))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", metavar="M,...", help="A/B and profile these models instead of probing the machine")
    parser.add_argument("--size", default="1080p", help="frame size for --profile")
    parser.add_argument("--fold", metavar="M,...", help="A/B the decoders' upsampling blocks plain and folded")
    parser.add_argument("--sizes", default="720p,1080p,4k", help="eager frame sizes for --fold and --winograd")
    parser.add_argument("--compile-size", default=None, help="also A/B --compile at this size")
    parser.add_argument("--max-channels", type=int, default=None,
                        help="--fold: also a variant that folds blocks up to this many output channels")
    parser.add_argument("--winograd", metavar="M,...", help="A/B the wide convs direct and as Winograd convolutions")
    parser.add_argument("--device", default="cuda", help="--fold, --winograd: cuda or cpu")
    parser.add_argument("--precision", default="fp16", help="--fold, --winograd: fp16, bf16 or fp32")
    args = parser.parse_args()
    if args.fold or args.winograd:
        setting, variants = (("FOLD_UPSAMPLING_UP_TO", fold_variants(args.device, args.max_channels)) if args.fold
                             else ("WINOGRAD", [("direct", {}), ("winograd", engine.WINOGRAD)]))
        engine_ab(setting, variants, (args.fold or args.winograd).split(","), args.sizes.split(","),
                  args.compile_size, device=args.device, precision=args.precision)
    elif args.profile:
        profile(args.profile.split(","), args.size)
    else:
        environment()


if __name__ == "__main__":
    main()
