"""Test clips written with PyAV (rotation, variable frame rate, WebM, odd sizes, truncated, corrupt...) and
helpers that read videos back. Every clip is tiny: a few dozen frames of 64x48 or so."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

STYLE = "picabia_udnie.jpg"


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A frame with gradients, a per-frame blue level, and a white top-left corner that shows orientation."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = x * 255 // max(1, width - 1)
    rgb[..., 1] = y * 255 // max(1, height - 1)
    rgb[..., 2] = (index * 37) % 256
    rgb[: height // 4, : width // 4] = 255
    return rgb


def write_clip(path: Path, *, width: int = 64, height: int = 48, frames: int = 12, codec: str = "libx264",
               pts: list[int] | None = None, rotation: int | None = None, audio: str | None = None,
               time_base: Fraction = Fraction(1, 30), options: dict[str, str] | None = None) -> Path:
    """Encode `pattern` frames; `pts` in `time_base` units (default 0, 1, 2...); optional sine-wave audio."""
    with av.open(str(path), "w", options=options or {}) as container:
        video = container.add_stream(codec, rate=30, options={"g": "6"} if codec == "libx264" else {})
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        video.time_base = video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=48000, layout="stereo") if audio is not None else None
        timestamps = pts or list(range(frames))
        for index, stamp in enumerate(timestamps):
            frame = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            _write_sine(container, sound, float((timestamps[-1] + 1) * time_base))
    return path


def _write_sine(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    samples = int(48000 * seconds)
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
    for start in range(0, samples, 960):
        chunk = np.ascontiguousarray(np.stack([wave[start:start + 960]] * 2))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        _write_sine(container, container.add_stream("aac", rate=48000, layout="stereo"), 0.5)
    return path


def write_corrupt_copy(source: Path, path: Path, bad_packets: tuple[int, ...]) -> Path:
    """Remux `source`'s video into Matroska with the given packets' payloads replaced by random bytes."""
    rng = np.random.default_rng(0)
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        video_in = inp.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        for number, packet in enumerate(p for p in inp.demux(video_in) if p.dts is not None):
            if number in bad_packets:
                garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                packet = garbage
            packet.stream = video_out
            out.mux(packet)
    return path


@dataclass
class Probe:
    """A video read back: decoded frames (RGB), their times, stream facts and the audio packets' bytes."""

    frames: list[np.ndarray]
    times: list[float]
    time_base: Fraction
    codecs: list[str]
    duration: float | None
    rotation: int
    audio_packets: list[bytes]
    audio_codec: str | None


def probe(path: Path | str) -> Probe:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames, times, rotation = [], [], 0
        for frame in container.decode(video):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
            rotation = frame.rotation
        audio, audio_codec = [], None
        if container.streams.audio:
            container.seek(0)
            audio_codec = container.streams.audio[0].codec_context.name
            audio = [bytes(p) for p in container.demux(container.streams.audio[0]) if p.dts is not None]
        duration = container.duration / av.time_base if container.duration else None
        return Probe(frames, times, video.time_base, [s.codec_context.name for s in container.streams],
                     duration, rotation, audio, audio_codec)


def color_stats(images: list[np.ndarray]) -> np.ndarray:
    """Per-channel mean and std over a set of RGB images: a 6-vector."""
    pixels = np.concatenate([np.asarray(i, np.float64).reshape(-1, 3) for i in images])
    return np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])


def moved_toward_style(source_frames: list[np.ndarray], output_frames: list[np.ndarray], style_rgb: np.ndarray) -> bool:
    """The output's colour statistics lie clearly closer to the style's than the source's do."""
    style = color_stats([style_rgb])
    before = np.linalg.norm(color_stats(source_frames) - style)
    after = np.linalg.norm(color_stats(output_frames) - style)
    return after < 0.6 * before
