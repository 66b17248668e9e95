"""Where stylized frames go: video files and network streams (PyAV, encoded in their own thread), virtual cameras.

A sink is opened before the first frame (so a bad codec, container or address fails at once),
takes frames with `write`, and is ended with `close`. `finish` before `close` says the output is
complete: a file is then moved from its temporary name into place; without it (Ctrl-C, an
error) the container is still finished properly and kept under a name that says it is partial.
`finish(source_ended=True)` also copies the input's audio to the end of the requested part,
not only as far as the video went.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from .errors import UserError, first_line
from .files import free_name, temporary_beside
from .images import even_size, pad_to_even
from .sources import Frame, SourceInfo

log = logging.getLogger(__name__)

CODECS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "vp9": ("libvpx-vp9",),
    "av1": ("libsvtav1", "libaom-av1"),
}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".ts": "mpegts"}
STREAM_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts", "rtmp": "flv",
                  "rtmps": "flv", "rtsp": "rtsp"}
_MPEGTS_CODECS = {"h264", "hevc", "av1", "mpeg2video", "aac", "mp3", "mp2", "ac3", "eac3", "opus"}
_QUEUE_SIZE = 8
_POLL_S = 0.1
_END = object()


@dataclass(frozen=True)
class _EncoderProfile:
    """Defaults for one encoder: quality (CRF), its own name for the speed knob, fixed options, and options
    that tune the default preset (a preset the user names gets the encoder's own settings for it)."""

    crf: int
    max_crf: int
    preset: str
    preset_option: str
    options: tuple[tuple[str, str], ...] = ()
    low_latency: tuple[tuple[str, str], ...] = ()
    default_preset_tuning: tuple[tuple[str, str], ...] = ()


# Presets favour speed: the encoder shares the CPU with the networks and must keep up with them.
# x264: veryfast without its p8x8/b8x8 partition search (superfast's partitions) takes 14-26 % less CPU on
# stylized 720p frames, for 1.5-1.8 % more bytes at ~0.1 dB higher PSNR (benchmarks/RESULTS.md).
_PROFILES = {
    "libx264": _EncoderProfile(23, 51, "veryfast", "preset", low_latency=(("tune", "zerolatency"),),
                               default_preset_tuning=(("partitions", "i8x8,i4x4"),)),
    "libx265": _EncoderProfile(28, 51, "veryfast", "preset", (("x265-params", "log-level=error"),),
                               (("tune", "zerolatency"),)),
    "libvpx-vp9": _EncoderProfile(32, 63, "8", "cpu-used", (("b", "0"), ("deadline", "realtime"), ("row-mt", "1")),
                                  (("lag-in-frames", "0"),)),
    "libsvtav1": _EncoderProfile(35, 63, "10", "preset"),
    "libaom-av1": _EncoderProfile(32, 63, "8", "cpu-used", (("usage", "realtime"),)),
}


@dataclass(frozen=True)
class EncoderSettings:
    """Video encoding choices (None: the encoder's default from `_PROFILES`) and whether to keep audio."""

    codec: str | None = None  # h264, hevc, vp9, av1; None: vp9 for .webm, h264 otherwise
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str = "yuv420p"
    audio: bool = True


class Sink(Protocol):
    """A destination for stylized frames."""

    def write(self, frame: Frame, rgb: np.ndarray) -> None: ...
    def finish(self, source_ended: bool) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- PyAV encoding
class EncodingSink:
    """Encodes frames with PyAV in a named thread fed by a bounded queue, keeping each frame's timestamp
    (so a variable frame rate stays variable) and copying the input's audio alongside.

    Subclasses say where the container is written and what happens when it is closed.
    """

    def __init__(self, target: str, container_format: str | None, settings: EncoderSettings, info: SourceInfo,
                 low_latency: bool = False, container_options: dict[str, str] | None = None,
                 label: str | None = None) -> None:
        self.written = 0
        self.label = label or target
        self._completed = False
        self._source_ended = False
        self._error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
        self._container: av.container.OutputContainer | None = None
        self._audio: _AudioTrack | None = None
        self._thread: threading.Thread | None = None
        encoder = _encoder_for(settings.codec or "h264")
        try:
            self._container = av.open(target, "w", format=container_format, container_options=container_options)
        except av.FFmpegError as exc:
            raise UserError(f"{self.label}: cannot open for writing ({first_line(exc)})") from None
        try:
            self._add_video(encoder, settings, info, low_latency)
            if settings.audio and info.audio_path is not None:
                self._audio = _AudioTrack(info.audio_path, info.start, self._container, self.label)
        except BaseException:
            self._container.close()
            raise
        self._time_base = info.time_base
        self._frame_ticks = max(1, round(1 / (info.fps * info.time_base)))
        self._last_pts: int | None = None
        self._end_pts = 0
        self._requested_length = info.duration
        self._reformatter = VideoReformatter()
        self._thread = threading.Thread(target=self._run, name=f"encode:{Path(target).name}", daemon=True)
        self._thread.start()

    def _add_video(self, encoder: str, settings: EncoderSettings, info: SourceInfo, low_latency: bool) -> None:
        codec_name = av.Codec(encoder, "w").name
        if not _holds(self._container, av.Codec(encoder, "w").canonical_name):
            raise UserError(f"{self.label}: a {self._container.format.name} file cannot hold "
                            f"{settings.codec or 'h264'} video; pick another --codec or another file type")
        formats = [f.name for f in av.Codec(encoder, "w").video_formats or ()]
        if formats and settings.pix_fmt not in formats:
            raise UserError(f"--pix-fmt {settings.pix_fmt}: {codec_name} takes {', '.join(formats)}")
        self._pad = av.VideoFormat(settings.pix_fmt).chroma_width(2) < 2 and (info.width % 2 or info.height % 2)
        width, height = even_size(info.width, info.height) if self._pad else (info.width, info.height)
        self.size = (width, height)
        if self._pad:
            log.warning("%dx%d has an odd side, which %s cannot store: the output is %dx%d (edge pixels repeated; "
                        "--pix-fmt yuv444p keeps the size)", info.width, info.height, settings.pix_fmt, width, height)
        profile = _PROFILES[encoder]
        if settings.crf is not None and settings.crf > profile.max_crf:  # x264 would clamp it silently
            raise UserError(f"--crf {settings.crf}: {codec_name} takes 0-{profile.max_crf}")
        options = dict(profile.options)
        options["crf"] = str(settings.crf if settings.crf is not None else profile.crf)
        options[profile.preset_option] = settings.preset or profile.preset
        if settings.preset is None:
            options.update(profile.default_preset_tuning)
        if low_latency:
            options.update(profile.low_latency)
        rate = Fraction(info.fps).limit_denominator(1001)
        stream = self._container.add_stream(encoder, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709, as converted below
        context.color_range = ColorRange.MPEG
        if low_latency:
            context.gop_size = max(1, round(info.fps))  # a keyframe a second: receivers can join quickly
        try:  # now, not at the first frame in the encode thread: settings it refuses are a clear error up front
            context.open()
        except av.FFmpegError as exc:
            raise UserError(f"{self.label}: {codec_name} refuses {width}x{height} {settings.pix_fmt} with --preset "
                            f"{options[profile.preset_option]} --crf {options['crf']} ({exc.strerror})") from None
        self._video = stream

    # ------------------------------------------------------------------ main-thread side
    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        """Queue a frame for encoding (waits while the queue is full: nothing is dropped)."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((frame.pts, rgb), timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def finish(self, source_ended: bool) -> None:
        self._completed = True
        self._source_ended = source_ended

    def close(self) -> None:
        """Encode what is queued, flush the encoder, write the container's trailer: the output plays."""
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.put(_END, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            self._thread = None
        if self._container is not None:
            try:
                if self._audio is not None:
                    self._audio.close()
                self._container.close()
            except (av.FFmpegError, OSError) as exc:  # e.g. a full disk while writing the trailer
                self._error = self._error or exc
            finally:
                self._container = None
                self._closed()
        self._raise_if_failed()

    def _closed(self) -> None:
        """After the container is closed (subclasses move files here); `self._complete` says how it went."""

    @property
    def _complete(self) -> bool:
        return self._completed and self._error is None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> "EncodingSink":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ encode thread
    def _run(self) -> None:
        ended = False  # the main thread's _END arrived: nothing more will be put
        try:
            while (item := self._queue.get()) is not _END:
                self._encode(*item)
            ended = True
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.mux_until(self._audio_end())
        except BaseException as exc:  # re-raised in the main thread by write/close
            self._error = exc
            while not ended:  # take what the main thread still puts, so that it never waits on a full queue
                ended = self._queue.get() is _END

    def _audio_end(self) -> float:
        """Audio goes as far as the video, or, when the whole input was rendered, to the end of the requested part."""
        video_end = float(self._end_pts * self._time_base)
        if not (self._completed and self._source_ended):
            return video_end
        return float("inf") if self._requested_length is None else max(video_end, self._requested_length)

    def _encode(self, pts: int, rgb: np.ndarray) -> None:
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # timestamps must grow; a damaged input can repeat one
        frame = av.VideoFrame.from_ndarray(pad_to_even(rgb) if self._pad else rgb, format="rgb24")
        frame = self._reformatter.reformat(frame, format=self._video.pix_fmt, dst_colorspace=Colorspace.ITU709,
                                           dst_color_range=ColorRange.MPEG)
        frame.pts, frame.time_base = pts, self._time_base
        self._container.mux(self._video.encode(frame))
        # this frame lasts as long as the previous one (the first: one frame at the nominal rate)
        self._end_pts = pts + (pts - self._last_pts if self._last_pts is not None else self._frame_ticks)
        self._last_pts = pts
        self.written += 1
        if self._audio is not None:
            self._audio.mux_until(float(pts * self._time_base))


class _AudioTrack:
    """The input's first audio stream in the output: packets copied unchanged when the output container can
    hold the codec, decoded and re-encoded (and said so) only when it cannot. Time 0 of the output is
    `start` seconds into the input; packets are muxed as the video reaches their time, so they interleave."""

    def __init__(self, path: str, start: float, output: av.container.OutputContainer, label: str) -> None:
        self._input = av.open(path)
        try:
            self._source = self._input.streams.audio[0]
            self._start = start
            self._input_start = (self._input.start_time or 0) / av.time_base
            self._encoder = self._add_stream(output, label)
            if start > self._input_start:
                self._input.seek(int(start * av.time_base), backward=True)
            self._packets = self._input.demux(self._source)
            self._pending: av.Packet | None = None
            self._samples = 0
        except BaseException:
            self._input.close()
            raise

    def _add_stream(self, output: av.container.OutputContainer, label: str) -> av.audio.stream.AudioStream | None:
        codec = self._source.codec_context.name
        if _holds(output, codec):
            self.stream = output.add_stream_from_template(self._source)
            self.stream.time_base = self._source.time_base
            return None
        target = "libopus" if output.format.name == "webm" else "aac"
        rate = self._source.codec_context.sample_rate
        if target == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 48000
        self.stream = output.add_stream(target, rate=rate, layout=self._source.codec_context.layout.name)
        log.warning("%s: a %s file cannot hold %s audio, so the audio is re-encoded to %s", label,
                    output.format.name, codec, target.removeprefix("lib"))
        return self.stream

    def mux_until(self, seconds: float) -> None:
        """Mux every packet that starts before `seconds` of output time."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                continue
            begins = float(packet.pts * packet.time_base) - self._start
            if begins >= seconds:
                self._pending = packet
                return
            ends = begins + float((packet.duration or 0) * packet.time_base)
            if ends <= 0 and packet.pts * packet.time_base >= self._input_start:
                continue  # before the requested start (priming packets before the input's own start stay)
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        shift = round(self._start / packet.time_base)
        output = self.stream.container
        if self._encoder is None:
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = self.stream
            output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts, frame.time_base = self._samples, Fraction(1, frame.sample_rate)
            self._samples += frame.samples
            output.mux(self._encoder.encode(frame))

    def close(self) -> None:
        """Flush a re-encoder, then close the input."""
        if self._encoder is not None:
            self.stream.container.mux(self._encoder.encode(None))
        self._input.close()


def _holds(container: av.container.OutputContainer, codec: str) -> bool:
    """Whether a container can carry a codec. MPEG-TS keeps no codec table in FFmpeg, so its list is ours."""
    if container.format.name in ("mpegts", "rtp_mpegts"):
        return codec in _MPEGTS_CODECS
    return codec in container.supported_codecs


def _encoder_for(codec: str) -> str:
    """The first encoder this PyAV build has for a codec name."""
    if codec not in CODECS:
        raise UserError(f"--codec {codec}: unknown; choose one of {', '.join(CODECS)}")
    for encoder in CODECS[codec]:
        if encoder in av.codecs_available:
            return encoder
    raise UserError(f"--codec {codec}: this PyAV build has no encoder for it ({' or '.join(CODECS[codec])})")


class VideoFileSink(EncodingSink):
    """A video file, written under a temporary name beside the target and moved into place when complete.

    An unfinished render (Ctrl-C, SIGTERM, an error) keeps what was encoded as `NAME.partial.EXT`.
    An existing target is replaced only with `overwrite`.
    """

    def __init__(self, path: Path, settings: EncoderSettings, info: SourceInfo, overwrite: bool = False) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise UserError(f"{self.path}: unknown video file type {suffix or '(none)'!r}; use one of "
                            f"{', '.join(CONTAINERS)}")
        if self.path.exists() and not overwrite:
            raise UserError(f"{self.path}: output exists; pass --overwrite to replace it")
        if not self.path.parent.is_dir():
            raise UserError(f"{self.path.parent}: output folder does not exist")
        if settings.codec is None:
            settings = EncoderSettings("vp9" if suffix == ".webm" else "h264", settings.crf, settings.preset,
                                       settings.pix_fmt, settings.audio)
        try:
            handle, temp = temporary_beside(self.path, f".tmp{suffix}")
        except OSError as exc:
            raise UserError(f"{self.path.parent}: cannot write here ({exc.strerror})") from None
        os.close(handle)
        self._temp = Path(temp)
        self.partial_path: Path | None = None
        try:
            super().__init__(temp, CONTAINERS[suffix], settings, info, label=str(self.path))
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise

    def _closed(self) -> None:
        if self._complete:
            os.replace(self._temp, self.path)
        elif self.written:
            self.partial_path = free_name(self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}"))
            os.replace(self._temp, self.partial_path)
            log.warning("unfinished: the %d frame(s) done are in %s", self.written, self.partial_path)
        else:
            self._temp.unlink(missing_ok=True)


class StreamSink(EncodingSink):
    """A network stream (`udp://host:port`, `rtmp://...`, `srt://...`, `rtsp://...`) with low-latency
    encoder settings and a keyframe every second."""

    def __init__(self, url: str, settings: EncoderSettings, info: SourceInfo) -> None:
        scheme = url.partition("://")[0].lower()
        if scheme not in STREAM_FORMATS:
            raise UserError(f"{url}: unknown stream protocol {scheme!r}; use one of {', '.join(STREAM_FORMATS)}")
        options = {"flush_packets": "1"} if STREAM_FORMATS[scheme] == "mpegts" else {}
        super().__init__(url, STREAM_FORMATS[scheme], settings, info, low_latency=True, container_options=options)


# --------------------------------------------------------------------------- virtual camera
class VirtualCamSink:
    """A virtual camera other programs can open (pyvirtualcam: v4l2loopback on Linux, OBS's on Windows/macOS)."""

    def __init__(self, info: SourceInfo, device: str | None = None) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise UserError("--virtual-cam needs the optional extra: pip install 'realtime-adain[virtualcam]' "
                            "(on Linux also the v4l2loopback kernel module)") from None
        try:
            self._camera = pyvirtualcam.Camera(info.width, info.height, info.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                               device=device)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"--virtual-cam: {first_line(exc)} (on Linux: sudo modprobe v4l2loopback)") from None
        self.label = f"virtual camera {self._camera.device}"
        self.written = 0

    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        self._camera.send(rgb)
        self.written += 1

    def finish(self, source_ended: bool) -> None:
        """Nothing to make final: frames are gone once sent."""

    def close(self) -> None:
        self._camera.close()
