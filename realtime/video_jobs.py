"""`adain video` and `adain live`: build sources, sinks and the window, run the loop, show progress and a summary."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rich.progress import Progress, TextColumn

from .engine import Stylizer
from .errors import UserError
from .files import refuse_inputs_as_outputs
from .image_batch import output_paths
from .images import IMAGE_SUFFIXES
from .pipeline import RunOptions, RunResult, Status, StylePlan, View, run
from .sinks import CONTAINERS, EncoderSettings, Sink, StreamSink, VideoFileSink, VirtualCamSink
from .sources import SourceInfo, SourceSpec, is_stream_url, open_source
from .ui import console, item_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Framing:
    """How inputs are read: resize (size or scale), part of a file (start, duration), rate of image sequences."""

    size: tuple[int, int] | None = None
    scale: float | None = None
    start: float = 0.0
    duration: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class VideoJob:
    """`adain video`: render files, image sequences or streams into video files (or a stream)."""

    inputs: Sequence[str]
    plan: StylePlan
    output: str | None = None
    framing: Framing = Framing()
    encoder: EncoderSettings = EncoderSettings()
    overwrite: bool = False
    max_frames: int | None = None


@dataclass(frozen=True)
class LiveJob:
    """`adain live`: a camera or an input played live, shown in a window and/or sent on."""

    plan: StylePlan
    camera: str | None = None
    input: str | None = None
    output: str | None = None
    window: bool = True
    virtual_cam: bool = False
    framing: Framing = Framing()
    encoder: EncoderSettings = EncoderSettings()
    overwrite: bool = False
    max_frames: int | None = None
    snapshot_dir: Path = Path(".")


@dataclass
class JobResult:
    """Each input's run, the inputs that failed (input, one-line message), and whether a signal stopped it."""

    runs: list[RunResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False


# --------------------------------------------------------------------------- adain video
def video_inputs(patterns: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Inputs as given: URLs and files; a directory, or a glob of images, is one image sequence; any other
    glob stands for the files it matches. Also returns (pattern, message) for patterns that match nothing."""
    found: list[str] = []
    missing: list[tuple[str, str]] = []
    for pattern in patterns:
        if is_stream_url(pattern) or Path(pattern).exists():
            found.append(pattern)
        elif glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern) if Path(p).is_file())
            if not matches:
                missing.append((pattern, f"{pattern}: pattern matches no files"))
            elif all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in matches):
                found.append(pattern)
            else:
                found.extend(matches)
        else:
            missing.append((pattern, f"{pattern}: no such file"))
    return list(dict.fromkeys(found)), missing


def _name_of(target: str) -> Path:
    """A path to name outputs after: the file, or the folder of an image sequence."""
    return Path(target).parent if glob.has_magic(target) else Path(target.rstrip("/\\"))


def run_video_job(job: VideoJob, stylizer: Stylizer) -> JobResult:
    """Render each input in turn; a bad input is reported and skipped, a signal stops the rest."""
    inputs, missing = video_inputs(job.inputs)
    result = JobResult(failed=missing)
    if not inputs:
        return result
    styles = [str(style) for entry in job.plan.entries for style in entry]
    if job.output is not None and is_stream_url(job.output):
        if len(inputs) > 1:
            raise UserError(f"-o {job.output}: a stream takes one input, got {len(inputs)}")
        targets: list[str] = [job.output]
    else:
        paths = output_paths([_name_of(i) for i in inputs], styles, job.output, tuple(CONTAINERS), ".mp4")
        refuse_inputs_as_outputs(paths, [*inputs, *_plan_files(job.plan)])
        targets = [str(p) for p in paths]
    for target, destination in zip(inputs, targets):
        spec = SourceSpec(target, size=job.framing.size, scale=job.framing.scale, start=job.framing.start,
                          duration=job.framing.duration, fps=job.framing.fps)

        def open_sinks(info: SourceInfo, destination: str = destination) -> list[Sink]:
            return [output_sink(destination, job.encoder, info, job.overwrite)]

        try:
            with _FrameProgress(live=False, max_frames=job.max_frames) as progress:
                outcome = run(lambda: open_source(spec), stylizer, job.plan, open_sinks,
                              options=RunOptions(max_frames=job.max_frames), on_start=progress.start,
                              on_frame=progress.update)
        except UserError as exc:
            result.failed.append((target, str(exc)))
            continue
        result.runs.append(outcome)
        report_run(outcome)
        if outcome.interrupted:
            result.interrupted = True
            break
    return result


def _plan_files(plan: StylePlan) -> list[object]:
    """The style images and mask a plan reads (with non-file styles, which the output check skips)."""
    return [*(style for entry in plan.entries for style in entry), plan.mask]


def output_sink(destination: str, encoder: EncoderSettings, info: SourceInfo, overwrite: bool) -> Sink:
    """A stream for a URL (udp://, rtmp://...), else a video file."""
    if is_stream_url(destination):
        return StreamSink(destination, encoder, info)
    return VideoFileSink(Path(destination), encoder, info, overwrite=overwrite)


# --------------------------------------------------------------------------- adain live
def run_live_job(job: LiveJob, stylizer: Stylizer) -> JobResult:
    """Play a camera, stream or file live through the networks until it ends, q is pressed, --max-frames is
    reached or a signal arrives; outputs are complete in every case (a live recording has no missing rest)."""
    if job.input is not None:
        spec = SourceSpec(job.input, live=True, size=job.framing.size, scale=job.framing.scale, fps=job.framing.fps)
    else:
        spec = SourceSpec(job.camera or "0", camera=True, size=job.framing.size, scale=job.framing.scale,
                          fps=job.framing.fps)

    if job.output is not None and not is_stream_url(job.output):
        refuse_inputs_as_outputs([Path(job.output)], [job.input, *_plan_files(job.plan)])

    def open_sinks(info: SourceInfo) -> list[Sink]:
        sinks: list[Sink] = []
        try:
            if job.output is not None:
                sinks.append(output_sink(job.output, job.encoder, info, job.overwrite))
            if job.virtual_cam:
                sinks.append(VirtualCamSink(info))
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        return sinks

    def open_window(info: SourceInfo) -> View | None:
        if not job.window:
            return None
        from .window import Window  # OpenCV's GUI is loaded only when a window is wanted

        return Window(f"adain - {info.name}", job.snapshot_dir)

    with _FrameProgress(live=True) as progress:
        outcome = run(lambda: open_source(spec), stylizer, job.plan, open_sinks, open_window,
                      RunOptions(max_frames=job.max_frames, final_on_stop=True), on_start=progress.start,
                      on_frame=progress.update)
    report_run(outcome)
    return JobResult(runs=[outcome], interrupted=outcome.interrupted is not None)


# --------------------------------------------------------------------------- progress and summary
class _FrameProgress:
    """A rich progress bar over frames (files: with a total and ETA; live: fps, latency and drops)."""

    def __init__(self, live: bool, max_frames: int | None = None) -> None:
        self._bar: Progress = item_progress(TextColumn("{task.fields[speed]}"))
        self._live = live
        self._max_frames = max_frames
        self._task = None

    def __enter__(self) -> "_FrameProgress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._bar.stop()

    def start(self, info: SourceInfo) -> None:
        """Show the bar once the input is open (a bad input then leaves no empty bar behind)."""
        total = None if self._live else info.frame_count
        if total is not None and self._max_frames is not None:
            total = min(total, self._max_frames)
        self._task = self._bar.add_task(Path(info.name).name[:40], total=total, speed="")
        self._bar.start()

    def update(self, result: RunResult, status: Status) -> None:
        speed = f"{status.fps:5.1f} fps"
        if self._live:
            speed += f"  {status.latency_ms:4.0f} ms  dropped {status.dropped}  {status.style}"
        total = self._bar.tasks[0].total
        if total is not None and result.frames_out > total:
            self._bar.update(self._task, total=result.frames_out)  # the header's frame count was low
        self._bar.update(self._task, completed=result.frames_out, speed=speed)


SLOW_FIRST_FRAME_SECONDS = 1.0
"""A first frame slower than this (compilation, cuDNN's algorithm search, a slow source) is left out of a second
rate, so a short render's summary also shows the speed it ran at once started."""


def _slow_first_frames(result: RunResult) -> int:
    """How many frames to leave out of the steady figures: each frame worker's first frame, which waited on the
    same one-off costs, when the first frame was slow and later frames came out; else none."""
    slow = result.frames_out > result.frames_in_flight and result.first_frame_seconds > SLOW_FIRST_FRAME_SECONDS
    return result.frames_in_flight if slow else 0


def _speed(result: RunResult) -> str:
    """'; N fps average over S s[, M fps after the first frame, which took F s] (networks X ms/frame[, ...])'."""
    text = f"; {result.fps:.1f} fps average over {result.seconds:.1f} s"
    if not result.frames_out:
        return text
    frames, stylize_seconds = result.frames_out, result.stylize_seconds
    skipped = _slow_first_frames(result)
    if skipped:
        text += (f", {result.steady_fps:.1f} fps after the first frame, which took "
                 f"{result.first_frame_seconds:.1f} s")
        frames -= skipped
        stylize_seconds -= result.first_frames_stylize_seconds
    in_flight = f", {result.frames_in_flight} frames at once" if result.frames_in_flight > 1 else ""
    return text + f" (networks {1000 * stylize_seconds / frames:.0f} ms/frame{in_flight})"


def _latency(result: RunResult) -> str:
    """', latency [after it ]median X ms, p95 Y ms': after a slow first frame, whose own latency holds the
    one-off costs, over the frames that followed it."""
    skipped = _slow_first_frames(result)
    return (f", latency{' after it' if skipped else ''} median {result.latency_ms(50, skipped):.0f} ms, "
            f"p95 {result.latency_ms(95, skipped):.0f} ms")


def report_run(result: RunResult) -> None:
    """The closing summary: frames in and out, drops and damage, speed, latency, and each output."""
    info, source = result.info, result.source
    lines = [f"{info.name}: {source.delivered} frame(s) in, {result.frames_out} out"
             + (f", {source.dropped} dropped (live: the newest frame wins)" if source.dropped else "")
             + _speed(result)
             + (_latency(result) if info.live else "")]
    if source.corrupt_packets or source.damaged_frames:
        lines.append(f"  damaged input: {source.corrupt_packets} corrupt packet(s) skipped, "
                     f"{source.damaged_frames} frame(s) decoded with concealed errors")
    if source.unreadable_images:
        lines.append(f"  damaged input: {source.unreadable_images} unreadable image(s) skipped")
    if source.cut_at is not None:
        lines.append(f"  the input is cut short: it ends at {source.cut_at:.2f} s of the announced "
                     f"{source.expected_end:.2f} s; every decodable frame was rendered")
    for sink in result.outputs:
        lines.append(f"  -> {_describe(sink)}")
    if result.interrupted:
        lines.append(f"  stopped by {result.interrupted}")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


def _describe(sink: Sink) -> str:
    written = getattr(sink, "written", 0)
    if isinstance(sink, VideoFileSink):
        path = sink.partial_path or sink.path
        if not path.exists():
            return f"{sink.path}: nothing written"
        state = " (unfinished render)" if sink.partial_path else ""
        width, height = sink.size
        return f"{path}{state}: {written} frame(s), {width}x{height}, {path.stat().st_size / 1e6:.2f} MB"
    return f"{getattr(sink, 'label', sink)}: {written} frame(s)"
