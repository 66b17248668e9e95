"""Where the CPU goes in `adain video` on a real clip: core-milliseconds per frame of decode, networks, encode.

On a CPU the decode and encode threads share the cores with the networks, so however well they overlap,
end-to-end fps cannot exceed  networks / (networks + decode + encode)  (all in CPU time per frame) of the
networks' own fps. This measures each term on a shared Big Buck Bunny clip with the tool's own source,
Stylizer and file sink (process CPU time of all threads, one stage at a time), for several x264 presets,
with each output's size and PSNR against the stylized frames, and prints that ceiling per preset.

    REALTIME_ADAIN_WEIGHTS=../shared/weights .venv/bin/python benchmarks/cpu_budget.py --json budget.json
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from rich.table import Table

from realtime.engine import Stylizer
from realtime.sinks import EncoderSettings, VideoFileSink
from realtime.sources import Frame, SourceInfo, SourceSpec, open_source
from video_clips import CLIPS, MEDIA, show_rows

CLIP = CLIPS["1280x720"]


def decode(clip: Path, count: int, start: float) -> tuple[list[Frame], float, SourceInfo]:
    """`count` frames from `start` seconds on, and the CPU milliseconds per frame of decoding the clip to RGB
    (from `start` to its end, so frames read ahead by the decode thread are counted too)."""
    cpu = time.process_time()
    with open_source(SourceSpec(str(clip), start=start)) as source:
        frames = list(source)
        info = source.info
    return frames[:count], 1000 * (time.process_time() - cpu) / len(frames), info


def stylize(stylizer: Stylizer, style: Path, frames: list[Frame]) -> tuple[list[np.ndarray], float, float]:
    """The stylized frames, with the networks' CPU and wall milliseconds per frame (after a warm-up frame)."""
    prepared = stylizer.prepare([str(style)])
    stylizer.stylize(frames[0].rgb, prepared)
    cpu, wall = time.process_time(), time.perf_counter()
    outputs = [stylizer.stylize(frame.rgb, prepared) for frame in frames]
    return outputs, 1000 * (time.process_time() - cpu) / len(frames), 1000 * (time.perf_counter() - wall) / len(frames)


def encode(frames: list[Frame], outputs: list[np.ndarray], info: SourceInfo, preset: str, path: Path) -> dict:
    """Encode through the tool's file sink with one x264 preset ('default': the tool's own, with its tuning):
    CPU ms per frame, kB per frame, PSNR."""
    start = time.process_time()
    settings = EncoderSettings(preset=None if preset == "default" else preset, audio=False)
    with VideoFileSink(path, settings, info, overwrite=True) as sink:
        for frame, rgb in zip(frames, outputs):
            sink.write(frame, rgb)
        sink.finish(source_ended=False)
    cpu_ms = 1000 * (time.process_time() - start) / len(frames)
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    mse = np.mean([np.mean((a.astype(np.float32) - b) ** 2) for a, b in zip(outputs, decoded)])
    return {"preset": preset, "encode_cpu_ms": round(cpu_ms, 1), "kb_per_frame": round(path.stat().st_size / 1000 / len(frames), 1),
            "psnr_db": round(10 * math.log10(255 ** 2 / mse), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=MEDIA, help="the shared media folder (default: ../shared/media)")
    parser.add_argument("--model", default="cd16x")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--start", type=float, default=0.0, help="seconds into the clip (it is 5.28 s long)")
    parser.add_argument("--presets", default="default,veryfast,superfast,ultrafast",
                        help="x264 presets to compare ('default': the tool's own choice, its tuned veryfast)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    frames, decode_ms, info = decode(args.media / CLIP, args.frames, args.start)
    stylizer = Stylizer(args.model)
    outputs, networks_ms, networks_wall_ms = stylize(stylizer, args.media / "styles" / "vangogh_starry_night.jpg", frames)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets.split(","):
            row = {"model": args.model, "clip": CLIP, "start_s": args.start, "frames": len(frames), "decode_cpu_ms": round(decode_ms, 1),
                   "networks_cpu_ms": round(networks_ms, 1), "networks_wall_ms": round(networks_wall_ms, 1)}
            row.update(encode(frames, outputs, info, preset, Path(folder) / f"{preset}.mp4"))
            row["ceiling_ratio"] = round(networks_ms / (networks_ms + decode_ms + row["encode_cpu_ms"]), 2)
            rows.append(row)
    table = Table("preset", "decode cpu ms", "networks cpu ms (wall)", "encode cpu ms", "kB/frame", "PSNR dB",
                  "e2e ceiling", title=f"CPU per 1280x720 frame, {args.model}, {len(frames)} frames from {args.start:g} s")
    for row in rows:
        table.add_row(row["preset"], str(row["decode_cpu_ms"]), f"{row['networks_cpu_ms']} ({row['networks_wall_ms']})",
                      str(row["encode_cpu_ms"]), str(row["kb_per_frame"]), str(row["psnr_db"]), str(row["ceiling_ratio"]))
    show_rows(table, rows, args.json)


if __name__ == "__main__":
    main()
