"""End-to-end `adain video` speed on the shared Big Buck Bunny clips (640x360 and 1280x720, both models).

Each row renders the first frames of a real clip with its audio through the same job the CLI runs
(decode thread -> Stylizer -> encode thread, audio copied) and, in the same process just before, times the
networks alone on frames of that clip, so the ratio compares like with like on a noisy machine.

    REALTIME_ADAIN_WEIGHTS=../shared/weights .venv/bin/python benchmarks/video_clips.py --json video.json

`--presets default,veryfast,ultrafast --rounds 3` compares x264 presets (`default`: the tool's own choice, its
tuned veryfast), `--frame-workers 1,auto` one frame at a time with the frames in flight the tool picks, and
`--threads auto,1` torch's CPU thread count (on a GPU, the threads that copy frames to and from it): every
round renders each variant once, in turn, so that the machine's drift falls on all of them alike. The
networks alone are timed one frame at a time (the ratio's denominator) and with the row's frames in flight.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.table import Table

from realtime.bench.runner import BenchSettings, time_frames
from realtime.engine import Stylizer
from realtime.pipeline import StylePlan
from realtime.runtime import configure_cpu_threads
from realtime.sinks import EncoderSettings
from realtime.sources import SourceSpec, open_source
from realtime.ui import console, print_wide
from realtime.video_jobs import VideoJob, run_video_job

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = {"640x360": "video/bbb_640x360_24fps_aac_stereo.mp4", "1280x720": "video/bbb_1280x720_25fps_aac_5.1.mp4"}
FRAMES = {("cd16x", "640x360"): 120, ("cd16x", "1280x720"): 60, ("vgg", "640x360"): 30, ("vgg", "1280x720"): 10}


def model_only_fps(stylizer: Stylizer, clip: Path, style: Path, frames: int, in_flight: int = 1) -> float:
    """Frames per second of the networks alone (uint8 frame in, uint8 frame out) on the clip's first frame,
    with `in_flight` frames at once."""
    prepared = stylizer.prepare([str(style)])
    with open_source(SourceSpec(str(clip))) as source:
        image = next(iter(source)).rgb
    settings = BenchSettings(iters=frames, warmup=1, max_seconds=3600)
    return time_frames(lambda: stylizer.stylize(image, prepared), stylizer.device, settings, in_flight,
                       stylizer.threads).fps


def measure(model: str, stylizer: Stylizer, size: str, style: Path, media: Path, out_dir: Path,
            preset: str | None = None, frames: int | None = None) -> dict:
    clip = media / CLIPS[size]
    frames = frames or FRAMES[(model, size)]
    threads = configure_cpu_threads(stylizer.threads)  # torch's count is global: this stylizer's, for its rows
    width, height = (int(side) for side in size.split("x"))
    in_flight = stylizer.frames_in_flight(height, width)
    networks_fps = model_only_fps(stylizer, clip, style, max(3, frames // 2))
    in_flight_fps = model_only_fps(stylizer, clip, style, max(3, frames // 2), in_flight)
    output = out_dir / f"{model}_{size}_{preset or 'default'}_{in_flight}.mp4"
    job = VideoJob(inputs=[str(clip)], plan=StylePlan(entries=((str(style),),)), output=str(output),
                   encoder=EncoderSettings(preset=preset), overwrite=True, max_frames=frames)
    run = run_video_job(job, stylizer).runs[0]
    return {"model": model, "size": size, "precision": str(stylizer.dtype).removeprefix("torch."),
            "compile": stylizer.compiled, "preset": preset or "default", "threads": threads,
            "frames_in_flight": in_flight,
            "frames": run.frames_out, "kb_per_frame": round(output.stat().st_size / 1000 / max(1, run.frames_out), 1),
            "video_fps": round(run.fps, 2), "model_only_fps": round(networks_fps, 2),
            "model_only_in_flight_fps": round(in_flight_fps, 2), "ratio": round(run.fps / networks_fps, 2),
            "networks_ms_per_frame": round(1000 * run.stylize_seconds / max(1, run.frames_out), 1)}


def show_rows(table: Table, rows: list[dict], json_path: Path | None) -> None:
    """The table at full width on screen, the rows as JSON after it, and in `json_path` if given."""
    print_wide(table, 180)
    console.print_json(json.dumps(rows))
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=MEDIA, help="the shared media folder (default: ../shared/media)")
    parser.add_argument("--models", default="cd16x,vgg")
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--compile", action="store_true", help="torch.compile the per-frame path")
    parser.add_argument("--presets", default="default", help="x264 presets to compare, e.g. default,veryfast,"
                        "ultrafast ('default': the tool's own, with its tuning)")
    parser.add_argument("--frame-workers", default="auto", help="frames in flight to compare, e.g. 1,auto "
                        "(default: the tool's own choice)")
    parser.add_argument("--threads", default="auto", help="torch's CPU thread counts to compare, e.g. auto,1 "
                        "(default: the tool's own choice)")
    parser.add_argument("--frames", type=int, help="frames to render per row (default: a count that suits a 2-core "
                        "CPU, 10 to 120 by model and size)")
    parser.add_argument("--rounds", type=int, default=1, help="render every row this many times, in turn")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    style = args.media / "styles" / "vangogh_starry_night.jpg"
    presets = [None if preset == "default" else preset for preset in args.presets.split(",")]
    workers = [None if count == "auto" else int(count) for count in args.frame_workers.split(",")]
    thread_counts = [None if count == "auto" else int(count) for count in args.threads.split(",")]
    stylizers = [(model, Stylizer(model, compile=args.compile, frame_workers=count, threads=threads))
                 for model in args.models.split(",") for count in workers for threads in thread_counts]
    with tempfile.TemporaryDirectory() as out_dir:
        rows = [measure(model, stylizer, size, style, args.media, Path(out_dir), preset, args.frames)
                for _ in range(args.rounds) for model, stylizer in stylizers for size in args.sizes.split(",")
                for preset in presets]
    table = Table("model", "size", "precision", "compile", "preset", "threads", "in flight", "frames", "kB/frame",
                  "adain video fps", "model-only fps", "model-only fps (in flight)", "ratio",
                  "networks ms/frame (in the run)", title="adain video on the shared clips")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    show_rows(table, rows, args.json)


if __name__ == "__main__":
    main()
