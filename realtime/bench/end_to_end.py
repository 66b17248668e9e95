"""End-to-end fps: a clip decoded, stylized and encoded through the real video pipeline, as `adain video`
runs it (sources.open_source -> pipeline.run -> sinks.VideoFileSink, decode and encode in their own
threads), plus each of decode and encode timed on its own for the stage breakdown."""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..engine import Stylizer
from ..errors import UserError
from ..images import resize_to
from ..pipeline import RunOptions, StylePlan, run
from ..sinks import EncoderSettings, VideoFileSink
from ..sources import SourceSpec, open_source
from .machine import PeakMemory
from .runner import BenchSettings, Timing, synthetic_frame

CLIP_FPS = 25
MIN_FRAMES = 10


def write_clip(path: Path, height: int, width: int, frames: int, footage: Path | None = None) -> Path:
    """A test clip (H.264, yuv420p; yuv444p at odd sizes, which 4:2:0 cannot hold) of `frames` frames at this
    size: the first frames of `footage` resized (from its start again if it is shorter), or a synthetic scene
    panning one pixel row and column per frame, so the encoder sees motion as in real footage. Real footage
    costs the encoder more than the scene."""
    pictures = _footage(footage, height, width) if footage is not None else _panning_scene(height, width, frames)
    try:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=CLIP_FPS, options={"preset": "veryfast", "crf": "20"})
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
            for index, rgb in zip(range(frames), pictures):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, CLIP_FPS)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    finally:
        pictures.close()
    return path


def _panning_scene(height: int, width: int, frames: int) -> Iterator[np.ndarray]:
    scene = synthetic_frame(height + frames, width + frames)
    for index in range(frames):
        yield np.ascontiguousarray(scene[index:index + height, index:index + width])


def _footage(path: Path, height: int, width: int) -> Iterator[np.ndarray]:
    """A video's frames resized to width x height, from its start again each time it ends."""
    while True:
        with open_source(SourceSpec(str(path))) as source:
            count = 0
            for count, frame in enumerate(source, start=1):
                yield resize_to(frame.rgb, width, height)
        if count == 0:
            raise UserError(f"{path}: no video frames to benchmark with")


def check_footage(path: Path) -> None:
    """Fail before any measurement, naming the file, if `adain bench --clip` cannot decode a frame of it."""
    pictures = _footage(path, 16, 16)
    try:
        next(pictures)
    finally:
        pictures.close()


def frame_count(path: Path) -> int:
    """Frames actually in a video file, counted by decoding it."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def measure_end_to_end(stylizer: Stylizer, style_rgb: np.ndarray, height: int, width: int,
                       settings: BenchSettings, model_fps: float | None = None) -> Timing:
    """Render a clip of `settings.clip_frames` frames (fewer when the model is slow: about
    `settings.max_seconds` of work; made from `settings.clip` where given) with the pipeline and the
    encoder settings of `adain video` (its default preset unless `settings.encoder_preset`).

    fps = frames out / wall time of the run; latency = capture to encoded-queue, per frame.
    """
    frames = settings.clip_frames
    if model_fps:
        frames = max(MIN_FRAMES, min(frames, round(model_fps * settings.max_seconds)))
    with tempfile.TemporaryDirectory(prefix="adain-bench-") as folder:
        clip = write_clip(Path(folder) / "clip.mp4", height, width, frames, settings.clip)
        output = Path(folder) / "stylized.mp4"
        stylizer.warm_up(height, width, stylizer.prepare(style_rgb))
        plan = StylePlan(entries=((style_rgb,),))
        encoder = EncoderSettings(preset=settings.encoder_preset, audio=False)
        with PeakMemory(stylizer.device) as memory:
            result = run(lambda: open_source(SourceSpec(str(clip))), stylizer, plan,
                         lambda info: [VideoFileSink(output, encoder, info)], options=RunOptions())
        written = frame_count(output)
        if result.frames_out != frames or written != frames:
            raise RuntimeError(f"end-to-end run lost frames: {frames} in, {result.frames_out} stylized, "
                               f"{written} in the output")
        stages = {"stylize": 1000 * result.stylize_seconds / frames, **_decode_and_encode_alone(clip, output, encoder)}
    return Timing(fps=result.fps, p50_ms=result.latency_ms(50), p95_ms=result.latency_ms(95), frames=frames,
                  warmup_s=0.0, peak_mem_mb=memory.peak_mb, stages_ms={k: round(v, 3) for k, v in stages.items()})


def _decode_and_encode_alone(clip: Path, stylized: Path, encoder: EncoderSettings) -> dict[str, float]:
    """ms per frame of the pipeline's decoder reading the clip, and of its encoder writing those frames."""
    start = time.perf_counter()
    with open_source(SourceSpec(str(clip))) as source:
        info = source.info
        decoded = list(source)
    decode_ms = 1000 * (time.perf_counter() - start) / len(decoded)
    start = time.perf_counter()
    with VideoFileSink(stylized.with_name("encode-only.mp4"), encoder, info) as sink:
        for frame in decoded:
            sink.write(frame, frame.rgb)
        sink.finish(source_ended=True)
    encode_ms = 1000 * (time.perf_counter() - start) / len(decoded)
    return {"decode": decode_ms, "encode": encode_ms}
