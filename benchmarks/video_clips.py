"""End-to-end `adain video` speed on the shared Big Buck Bunny clips (640x360 and 1280x720, both models).

Each row renders the first frames of a real clip with its audio through the same job the CLI runs
(decode thread -> Stylizer -> encode thread, audio copied) and, in the same process just before, times the
networks alone on frames of that clip, so the ratio compares like with like on a noisy machine.

    REALTIME_ADAIN_WEIGHTS=../shared/weights .venv/bin/python benchmarks/video_clips.py --json video.json

`--presets veryfast,ultrafast --rounds 3` compares x264 presets: every round renders each preset once, in
turn, so that the machine's drift falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.table import Table

from realtime.engine import Stylizer
from realtime.pipeline import StylePlan
from realtime.sinks import EncoderSettings
from realtime.sources import SourceSpec, open_source
from realtime.ui import console, print_wide
from realtime.video_jobs import VideoJob, run_video_job

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = {"640x360": "video/bbb_640x360_24fps_aac_stereo.mp4", "1280x720": "video/bbb_1280x720_25fps_aac_5.1.mp4"}
FRAMES = {("cd16x", "640x360"): 120, ("cd16x", "1280x720"): 60, ("vgg", "640x360"): 30, ("vgg", "1280x720"): 10}


def model_only_fps(stylizer: Stylizer, clip: Path, style: Path, frames: int) -> float:
    """Frames per second of the networks alone (uint8 frame in, uint8 frame out) on the clip's first frames."""
    prepared = stylizer.prepare([str(style)])
    with open_source(SourceSpec(str(clip))) as source:
        images = [frame.rgb for _, frame in zip(range(4), source)]
    stylizer.stylize(images[0], prepared)  # warm-up
    start = time.perf_counter()
    for index in range(frames):
        stylizer.stylize(images[index % len(images)], prepared)
    return frames / (time.perf_counter() - start)


def measure(model: str, stylizer: Stylizer, size: str, style: Path, media: Path, out_dir: Path,
            preset: str | None = None) -> dict:
    clip = media / CLIPS[size]
    frames = FRAMES[(model, size)]
    networks_fps = model_only_fps(stylizer, clip, style, max(3, frames // 2))
    output = out_dir / f"{model}_{size}_{preset or 'default'}.mp4"
    job = VideoJob(inputs=[str(clip)], plan=StylePlan(entries=((str(style),),)), output=str(output),
                   encoder=EncoderSettings(preset=preset), overwrite=True, max_frames=frames)
    run = run_video_job(job, stylizer).runs[0]
    return {"model": model, "size": size, "precision": str(stylizer.dtype).removeprefix("torch."),
            "compile": stylizer.compiled, "preset": preset or "default", "frames": run.frames_out,
            "kb_per_frame": round(output.stat().st_size / 1000 / max(1, run.frames_out), 1),
            "video_fps": round(run.fps, 2),
            "model_only_fps": round(networks_fps, 2), "ratio": round(run.fps / networks_fps, 2),
            "networks_ms_per_frame": round(1000 * run.stylize_seconds / max(1, run.frames_out), 1)}


def show_rows(table: Table, rows: list[dict], json_path: Path | None) -> None:
    """The table at full width on screen, the rows as JSON after it, and in `json_path` if given."""
    print_wide(table, 150)
    console.print_json(json.dumps(rows))
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=MEDIA, help="the shared media folder (default: ../shared/media)")
    parser.add_argument("--models", default="cd16x,vgg")
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--compile", action="store_true", help="torch.compile the per-frame path")
    parser.add_argument("--presets", default="", help="x264 presets to compare, e.g. veryfast,ultrafast "
                        "(default: the tool's own)")
    parser.add_argument("--rounds", type=int, default=1, help="render every row this many times, in turn")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    style = args.media / "styles" / "vangogh_starry_night.jpg"
    presets = args.presets.split(",") if args.presets else [None]
    stylizers = {model: Stylizer(model, compile=args.compile) for model in args.models.split(",")}
    with tempfile.TemporaryDirectory() as out_dir:
        rows = [measure(model, stylizer, size, style, args.media, Path(out_dir), preset)
                for _ in range(args.rounds) for model, stylizer in stylizers.items() for size in args.sizes.split(",")
                for preset in presets]
    table = Table("model", "size", "precision", "compile", "preset", "frames", "kB/frame", "adain video fps",
                  "model-only fps", "ratio", "networks ms/frame (in the run)", title="adain video on the shared clips")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    show_rows(table, rows, args.json)


if __name__ == "__main__":
    main()
