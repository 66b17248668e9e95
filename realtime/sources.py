"""Where frames come from: video files and network streams (PyAV), cameras (OpenCV), image sequences.

Each source reads its first frame while it is being opened (so a bad input fails at once), then
decodes in its own named thread ahead of the consumer, through a bounded queue. Files deliver
every frame; live sources (cameras, network streams, a file played as if live) keep only the
newest frame, so latency stays bounded when the consumer is slower than the source.
"""

from __future__ import annotations

import glob
import itertools
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from .errors import UserError, first_line
from .images import IMAGE_SUFFIXES, bgr_to_rgb, fit_size, read_image, resize_to, rotate_rgb
from .runtime import usable_cpus

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("udp", "rtp", "rtsp", "rtmp", "rtmps", "srt", "tcp", "http", "https", "hls")
_POLL_S = 0.1  # how often blocked queue operations look at the stop flag
_DECODE_THREADS = 8
"""At most this many decoder threads. With frame threading, two damaged packets fewer than a thread count
apart lose the frames in flight and one error goes unreported: with 16 threads (a 16-core machine) two bad
packets 12 apart cost 13 frames instead of 3. Eight threads still decode 4K faster than the networks run."""
_JOIN_S = 3.0
_END = object()
# AVColorSpace tags -> swscale matrices (bt709, fcc, bt470bg, smpte170m, smpte240m, bt2020 ncl/cl)
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}


@dataclass(frozen=True)
class _Failed:
    """An exception raised in a reader thread, carried to the consumer, which re-raises it."""

    error: BaseException


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB uint8 (H, W, 3), its position, its presentation time, and when it arrived.

    `pts` counts `time_base` units from the start of the output (the requested start for files),
    so a variable frame rate is kept as it is. `captured` is the `time.monotonic()` at which the
    frame became available (for a file played as live: the moment it was due), for latency.
    """

    rgb: np.ndarray
    index: int
    pts: int
    time_base: Fraction
    captured: float

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class SourceInfo:
    """What a consumer needs to know before the first frame: size of the delivered frames, rate, kind."""

    name: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    live: bool
    frame_count: int | None = None  # expected number of frames (None: unknown, e.g. a camera)
    audio_path: str | None = None  # a file whose audio can be copied into the output
    start: float = 0.0  # seconds into `audio_path` at which the output's time 0 lies
    duration: float | None = None  # seconds asked for with --duration (None: to the end of the input)


@dataclass
class SourceReport:
    """What happened while reading: frames delivered and dropped, damage found, an early end."""

    delivered: int = 0
    dropped: int = 0
    corrupt_packets: int = 0  # packets the decoder rejected: skipped
    damaged_frames: int = 0  # frames decoded with concealed errors: kept
    unreadable_images: int = 0  # image-sequence files that could not be read: skipped (their time stays a gap)
    cut_at: float | None = None  # the input ended here (seconds) before its announced end
    expected_end: float | None = None


class Source(Protocol):
    """A frame source: iterate for frames; `stop()` (safe from a signal handler) ends the iteration early."""

    info: SourceInfo
    report: SourceReport

    def __iter__(self) -> Iterator[Frame]: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """How to open an input: a file, URL, directory/glob of images, or camera, and what to do with it.

    live: deliver only the newest frame (a file is then played at its own pace, in real time).
    size/scale: resize frames to (width, height), or by a factor, after rotation.
    start/duration: seconds into a file, and how much of it to read.
    fps: frame rate for image sequences, and the rate asked of a camera.
    """

    target: str
    camera: bool = False
    live: bool = False
    size: tuple[int, int] | None = None
    scale: float | None = None
    start: float = 0.0
    duration: float | None = None
    fps: float | None = None


def open_source(spec: SourceSpec) -> "ReaderSource":
    """The right source for an input: camera, network stream, image sequence or video file."""
    if spec.camera:
        return CameraSource(spec)
    if is_stream_url(spec.target):
        return StreamSource(spec)
    if Path(spec.target).is_dir() or glob.has_magic(spec.target):
        return ImageSequenceSource(spec)
    return FileSource(spec)


def is_stream_url(target: str) -> bool:
    scheme, sep, _ = target.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


# --------------------------------------------------------------------------- the reader thread
class _FrameReader:
    """Runs a frame generator in a named daemon thread and hands frames over through a bounded queue.

    latest_only: a full queue loses its oldest frame to the new one (counted in `dropped`);
    otherwise the producer waits for room, so nothing is lost.
    """

    def __init__(self, produce: Callable[[threading.Event], Iterator[Frame]], name: str, latest_only: bool,
                 maxsize: int = 4) -> None:
        self._latest_only = latest_only
        self._queue: queue.Queue = queue.Queue(maxsize=1 if latest_only else maxsize)
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[threading.Event], Iterator[Frame]]) -> None:
        try:
            for frame in produce(self._stop):
                if self._stop.is_set():
                    break
                self._put(frame, droppable=True)
        except BaseException as exc:  # carried to the consumer, which re-raises it in the main thread
            self._put(_Failed(exc), droppable=False)
        finally:
            self._put(_END, droppable=False)

    def _put(self, item: object, droppable: bool) -> None:
        drop_oldest = droppable and self._latest_only
        while not self._stop.is_set():
            try:
                if drop_oldest:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if drop_oldest:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def get(self) -> Frame | None:
        """The next frame, or None at the end or once a stop was asked for; re-raises the reader's error."""
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return None
            if isinstance(item, _Failed):
                raise item.error
            return item
        return None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> bool:
        """Stop the thread, drain the queue so a waiting producer can finish, and join it; False if it is
        still running (blocked in a read that only its own timeout ends)."""
        self._stop.set()
        deadline = time.monotonic() + _JOIN_S
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=_POLL_S)
        if self._thread.is_alive():
            log.debug("reader thread %s is still in a blocking read; leaving it to its timeout", self._thread.name)
            return False
        return True


class ReaderSource:
    """Shared life cycle: subclasses open their input and read a first frame in `__init__`, then call
    `_start` with a generator of the remaining frames; iteration, stop and close are common.

    A recording played live starts its reader (and its clock) with the iteration, not at opening, so
    whatever the caller does in between (opening outputs, warming the model up) costs it no frames.
    Cameras and streams run on their own clock: their reader starts at once and keeps the newest frame.
    """

    info: SourceInfo
    report: SourceReport
    _reader: _FrameReader | None = None
    _pending: Callable[[], _FrameReader] | None = None
    _paced = True  # played live, a recording is held to its own clock (cameras and streams keep their own pace)

    def _start(self, first: Frame, rest: Callable[[threading.Event], Iterator[Frame]], name: str) -> None:
        def produce(stop: threading.Event) -> Iterator[Frame]:
            frames = itertools.chain([first], rest(stop))
            yield from _in_real_time(frames, stop) if self.info.live and self._paced else frames

        self._pending = lambda: _FrameReader(produce, name=name, latest_only=self.info.live)
        if not (self.info.live and self._paced):
            self._reader, self._pending = self._pending(), None

    def __iter__(self) -> Iterator[Frame]:
        if self._reader is None and self._pending is not None:
            self._reader, self._pending = self._pending(), None
        while self._reader is not None:
            frame = self._reader.get()
            if frame is None:
                return
            self.report.delivered += 1
            self.report.dropped = self._reader.dropped
            yield frame

    def stop(self) -> None:
        self._pending = None
        if self._reader is not None:
            self._reader.stop()

    def close(self) -> None:
        stopped = True
        self._pending = None
        if self._reader is not None:
            stopped = self._reader.close()
            self.report.dropped = self._reader.dropped
        if stopped:  # never free an input a thread is still reading (garbage collection does it later)
            self._release()

    def _release(self) -> None:
        """Free the underlying input (after the reader thread has stopped)."""

    def __enter__(self) -> "ReaderSource":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- files and streams (PyAV)
class FileSource(ReaderSource):
    """A video file (any container FFmpeg reads) decoded with PyAV.

    Frame timestamps are kept (variable frame rate stays variable), rotation metadata is applied,
    non-square pixels are resized to the display size, packets the decoder rejects are skipped
    and counted, and a file that ends before its announced duration is read to its last
    decodable frame and reported as cut. With `spec.live` the file is played in real time.
    """

    _thread_type = "AUTO"  # frame + slice threads: fastest for files; streams use slices only (lower delay)

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.report = SourceReport()
        self._container: av.container.InputContainer | None = None
        self._container = self._open()
        try:
            self._setup(spec)
        except BaseException:
            self._release()
            raise

    def _open(self) -> av.container.InputContainer:
        path = Path(self.spec.target)
        if not path.exists():
            raise UserError(f"{path}: no such file")
        if path.is_file() and path.stat().st_size == 0:
            raise UserError(f"{path}: empty file")
        return _open_container(self.spec.target, options={}, timeout=None)

    def _setup(self, spec: SourceSpec) -> None:
        name = spec.target
        stream = _video_stream(self._container, name)
        stream.thread_type = self._thread_type
        stream.codec_context.thread_count = min(_DECODE_THREADS, len(usable_cpus()))
        self._stream = stream
        time_base = stream.time_base or Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 25.0
        self._tick = max(1, round(1 / (fps * time_base)))  # one frame, for frames without timestamps
        container_start = self._container.start_time / av.time_base if self._container.start_time else 0.0
        origin = container_start + spec.start
        self._origin_pts = round(origin / time_base)
        announced_end = _announced_end(self._container, stream)
        if spec.start and announced_end is not None and spec.start >= announced_end - container_start:
            raise UserError(f"{name}: --start {spec.start:g} s is past the end of the video "
                            f"({announced_end - container_start:.2f} s)")
        if spec.start:
            self._container.seek(self._origin_pts, stream=stream, backward=True, any_frame=False)
        end_time = None if spec.duration is None else origin + spec.duration  # absolute, exclusive
        self._end_pts = None if end_time is None else round(end_time / time_base)
        expected_end = announced_end if end_time is None else min(announced_end or end_time, end_time)
        self.report.expected_end = None if expected_end is None else expected_end - origin
        self._decoded = self._frames_in_range()
        first = next(self._decoded, None)
        if first is None:
            raise UserError(f"{name}: no decodable video frames" + (" after --start" if spec.start else ""))
        rotation = first.rotation or 0
        width, height = _display_size(first, stream)
        if round(rotation / 90) % 2:
            width, height = height, width
        self._rotation = rotation
        out_width, out_height = fit_size(width, height, spec.size, spec.scale)
        if (out_width, out_height) != (width, height):
            log.info("%s: %dx%d resized to %dx%d", name, width, height, out_width, out_height)
        self._storage_size = (out_height, out_width) if round(rotation / 90) % 2 else (out_width, out_height)
        has_audio = bool(self._container.streams.audio) and not is_stream_url(name)
        length = self.report.expected_end
        frame_count = round(length * fps) if length else (stream.frames or None)
        self.info = SourceInfo(name=name, width=out_width, height=out_height, fps=fps, time_base=time_base,
                               live=spec.live, frame_count=frame_count, audio_path=name if has_audio else None,
                               start=origin, duration=spec.duration)
        self._index = 0
        self._reformatter = VideoReformatter()  # keeps its swscale context from frame to frame
        self._start(self._to_frame(first, time.monotonic()), self._rest, name=f"decode:{Path(name).name}")

    def _frames_in_range(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from the requested start to the requested end."""
        last_pts = None
        for frame in self._decode_all():
            if frame.pts is None:  # e.g. raw elementary streams: count on from the previous frame
                frame.pts = self._origin_pts if last_pts is None else last_pts + self._tick
            last_pts = frame.pts
            if frame.pts < self._origin_pts - self._tick // 2:
                continue  # before --start: decoded for its references only
            if self._end_pts is not None and frame.pts >= self._end_pts:
                return
            yield frame

    def _decode_all(self) -> Iterator[av.VideoFrame]:
        """Every frame the decoder gives; rejected packets are skipped and counted, damaged frames counted."""
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                self._read_failed(exc)
                return
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self.report.corrupt_packets += 1
                log.debug("%s: skipped a corrupt packet at pts %s (%s)", self.spec.target, packet.pts,
                          first_line(exc))
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self.report.damaged_frames += 1
                yield frame

    def _read_failed(self, exc: av.FFmpegError) -> None:
        """The container cannot be read further: damaged here, so what was decoded is all there is."""
        log.warning("%s: cannot read past this point (%s)", self.spec.target, first_line(exc))

    def _rest(self, stop: threading.Event) -> Iterator[Frame]:
        for decoded in self._decoded:
            if stop.is_set():
                return
            yield self._to_frame(decoded, time.monotonic())
        self._check_cut()

    def _to_frame(self, decoded: av.VideoFrame, captured: float) -> Frame:
        rgb = self._reformatter.reformat(decoded, format="rgb24", src_colorspace=yuv_matrix(decoded),
                                         src_color_range=decoded.color_range or ColorRange.MPEG).to_ndarray()
        rgb = resize_to(rgb, *self._storage_size)
        rgb = rotate_rgb(rgb, self._rotation)
        frame = Frame(rgb, self._index, decoded.pts - self._origin_pts, self._stream.time_base, captured)
        self._index += 1
        self._last_pts = decoded.pts
        return frame

    def _check_cut(self) -> None:
        """Say so when the file ended well before its announced end (a truncated download or copy)."""
        expected = self.report.expected_end
        if expected is None or self._index == 0:
            return
        tolerance = max(0.25, 3 * self._tick * float(self._stream.time_base))  # headers round, audio runs on
        reached = (self._last_pts - self._origin_pts + self._tick) * float(self._stream.time_base)
        if reached < expected - tolerance:
            self.report.cut_at = reached
            log.debug("%s: the video ends at %.2f s of the announced %.2f s", self.spec.target, reached, expected)

    def _release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class StreamSource(FileSource):
    """A network stream (udp, rtsp, rtmp, srt, http...) read with PyAV: live, so only the newest frame is kept.

    Opening waits at most 10 s for data; a stream that stops delivering for 5 s ends with a clear error.
    """

    _thread_type = "SLICE"
    _paced = False
    OPEN_TIMEOUT_S = 10.0
    READ_TIMEOUT_S = 5.0

    def __init__(self, spec: SourceSpec) -> None:
        if spec.start or spec.duration is not None:
            raise UserError(f"{spec.target}: --start/--duration apply to files, not live streams")
        super().__init__(replace(spec, live=True))

    def _open(self) -> av.container.InputContainer:
        scheme = self.spec.target.partition("://")[0].lower()
        options = {"fflags": "nobuffer"}
        if scheme == "udp":
            options.update(overrun_nonfatal="1", fifo_size="1000000")
        elif scheme == "rtsp":
            options["rtsp_transport"] = "tcp"
        return _open_container(self.spec.target, options, (self.OPEN_TIMEOUT_S, self.READ_TIMEOUT_S))

    def _read_failed(self, exc: av.FFmpegError) -> None:
        if isinstance(exc, (av.error.ExitError, av.error.TimeoutError)):
            log.info("%s: no data for %.0f s; the stream has ended", self.spec.target, self.READ_TIMEOUT_S)
        else:
            log.warning("%s: the stream broke off (%s)", self.spec.target, first_line(exc))


def _in_real_time(frames: Iterator[Frame], stop: threading.Event) -> Iterator[Frame]:
    """Hand each frame over when it is due by its timestamp, as if it were being captured now; its
    `captured` time becomes that moment, so latency is measured from when a camera would have seen it."""
    clock_at_zero = None
    for frame in frames:
        if clock_at_zero is None:
            clock_at_zero = time.monotonic() - frame.time
        due = clock_at_zero + frame.time
        if stop.wait(max(0.0, due - time.monotonic())):
            return
        yield replace(frame, captured=due)


def _open_container(target: str, options: dict[str, str], timeout: tuple[float, float] | None
                    ) -> av.container.InputContainer:
    try:
        return av.open(target, "r", options=options, timeout=timeout)
    except av.error.InvalidDataError:
        raise UserError(f"{target}: not a video file, or a damaged one (FFmpeg cannot read it)") from None
    except (av.error.ExitError, av.error.TimeoutError):
        raise UserError(f"{target}: no data arrived in time (is the sender running?)") from None
    except av.FFmpegError as exc:
        raise UserError(f"{target}: cannot open ({first_line(exc)})") from None


def _video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The first real video stream (cover art in audio files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise UserError(f"{name}: has no video stream (it holds audio only)")
    raise UserError(f"{name}: has no video stream")


def _announced_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Where the header says the video ends (seconds, absolute), or None when it does not say."""
    if stream.duration:
        return float((stream.duration + (stream.start_time or 0)) * stream.time_base)
    if container.duration:
        return (container.duration + (container.start_time or 0)) / av.time_base
    return None


def yuv_matrix(frame: av.VideoFrame) -> Colorspace:
    """The YUV<->RGB matrix of a frame: its tag, or (untagged) BT.709 from 720 lines up and BT.601 below,
    as players assume."""
    tagged = _MATRICES.get(frame.colorspace)
    if tagged is not None:
        return tagged
    return Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601


def _display_size(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """Width x height as shown: non-square pixels (sample aspect ratio) widened or narrowed."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and sar != 1:
        return round(frame.width * sar), frame.height
    return frame.width, frame.height


# --------------------------------------------------------------------------- cameras (OpenCV)
class CameraSource(ReaderSource):
    """A camera by index ('0') or device path, through OpenCV, asking for size, rate and MJPG.

    A camera that cannot be opened, or that stops delivering frames, is retried once and then
    reported as a UserError.
    """

    RETRY_DELAY_S = 0.5
    _paced = False

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.report = SourceReport()
        self._device: int | str = int(spec.target) if spec.target.isdigit() else spec.target
        self._capture: cv2.VideoCapture | None = None
        first_bgr = self._read(retry=True, what="cannot be opened (missing, or in use by another program?)")
        fps = self._capture.get(cv2.CAP_PROP_FPS) or spec.fps or 30.0
        height, width = first_bgr.shape[:2]
        self._size = fit_size(width, height, spec.size, spec.scale)
        if spec.size and (width, height) != spec.size:
            log.info("camera %s: asked for %dx%d, got %dx%d (resized)", spec.target, *spec.size, width, height)
        self.info = SourceInfo(name=f"camera {spec.target}", width=self._size[0], height=self._size[1],
                               fps=float(fps), time_base=Fraction(1, 1_000_000), live=True)
        self._t0 = time.monotonic()
        self._index = 0
        self._start(self._to_frame(first_bgr), self._rest, name=f"camera:{spec.target}")

    def _connect(self) -> None:
        self._release()
        capture = cv2.VideoCapture(self._device)
        if capture.isOpened():
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))  # ignored where not offered
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver keeps no backlog of old frames either
            if self.spec.size:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.spec.size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.spec.size[1])
            if self.spec.fps:
                capture.set(cv2.CAP_PROP_FPS, self.spec.fps)
        self._capture = capture

    def _read(self, retry: bool, what: str) -> np.ndarray:
        """A BGR frame; on failure reconnect once (transient errors), then raise."""
        for attempt in range(2 if retry else 1):
            if attempt or self._capture is None:
                if attempt:
                    time.sleep(self.RETRY_DELAY_S)
                self._connect()
            ok, bgr = self._capture.read() if self._capture.isOpened() else (False, None)
            if ok and bgr is not None:
                return bgr
        raise UserError(f"camera {self.spec.target}: {what}")

    def _rest(self, stop: threading.Event) -> Iterator[Frame]:
        while not stop.is_set():
            yield self._to_frame(self._read(retry=True, what="stopped delivering frames"))

    def _to_frame(self, bgr: np.ndarray) -> Frame:
        now = time.monotonic()
        rgb = resize_to(bgr_to_rgb(bgr), *self._size)
        frame = Frame(rgb, self._index, round((now - getattr(self, "_t0", now)) * 1_000_000),
                      Fraction(1, 1_000_000), now)
        self._index += 1
        return frame

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


# --------------------------------------------------------------------------- image sequences
class ImageSequenceSource(ReaderSource):
    """The images of a directory, or of a glob, in natural order (frame2 before frame10), at `spec.fps`."""

    DEFAULT_FPS = 25.0

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.report = SourceReport()
        fps = spec.fps or self.DEFAULT_FPS
        skip = round(spec.start * fps)
        self._files = image_files(spec.target)[skip:None if spec.duration is None else
                                              skip + max(1, round(spec.duration * fps))]
        if not self._files:
            raise UserError(f"{spec.target}: --start {spec.start:g} s is past the last image")
        first = read_image(self._files[0]).rgb
        height, width = first.shape[:2]
        self._first_size = (width, height)
        self._size = fit_size(width, height, spec.size, spec.scale)
        self._time_base = Fraction(1, 1) / Fraction(fps).limit_denominator(1001)
        self.info = SourceInfo(name=spec.target, width=self._size[0], height=self._size[1], fps=fps,
                               time_base=self._time_base, live=spec.live, frame_count=len(self._files))
        self._start(self._to_frame(0, first), self._rest, name="images")

    def _rest(self, stop: threading.Event) -> Iterator[Frame]:
        """The images after the first: an unreadable one is skipped (a gap in time, as a corrupt packet in a
        video file), one of another size is stretched to the first one's (said once)."""
        told_size = False
        for index, path in enumerate(self._files[1:], start=1):
            if stop.is_set():
                return
            try:
                rgb = read_image(path).rgb
            except UserError as exc:
                self.report.unreadable_images += 1
                log.warning("skipped %s", exc)
                continue
            size = (rgb.shape[1], rgb.shape[0])
            if size != self._first_size and not told_size:
                told_size = True
                log.warning("%s: %dx%d, unlike the first image's %dx%d; images of other sizes are stretched to "
                            "%dx%d", path, *size, *self._first_size, *self._size)
            yield self._to_frame(index, rgb)

    def _to_frame(self, index: int, rgb: np.ndarray) -> Frame:
        return Frame(resize_to(rgb, *self._size), index, index, self._time_base, time.monotonic())


def image_files(pattern: str) -> list[Path]:
    """A directory's images, or a glob's, sorted naturally; a UserError when there are none."""
    path = Path(pattern)
    candidates = path.iterdir() if path.is_dir() else (Path(p) for p in glob.glob(pattern))
    files = sorted((p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=_natural_key)
    if not files:
        raise UserError(f"{pattern}: no images found")
    return files


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
