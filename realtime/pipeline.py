"""The one loop: frames from a source, stylized, written to sinks and shown in an optional view.

It knows the Source, Stylizer, Sink and View protocols, not OpenCV or PyAV. It owns the lifetime of
everything it opens (an ExitStack closes sources and sinks, and so their threads, on every path),
and turns SIGINT/SIGTERM into an orderly stop: the loop ends after the frames in flight and every
sink finishes its container, so the output plays. A second signal stops at once. Rendering files on a
CPU, it keeps as many frames in flight as the stylizer says pays (see frame_workers); live sources and
the window take one frame at a time, for the lowest latency.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np

from .engine import PRESERVE_COLOR, ModelInfo, PreparedStyle, StyleControls
from .frame_workers import FrameWorkers
from .images import read_mask
from .signals import SignalStop, stop_on_signals
from .sinks import Sink
from .sources import Frame, Source, SourceInfo, SourceReport
from .styles import StyleSource

log = logging.getLogger(__name__)

ALPHA_STEP = 0.1


class Action(enum.Enum):
    """What a view (the window) asks of the loop."""

    NEXT_STYLE = "next style"
    PREVIOUS_STYLE = "previous style"
    ALPHA_UP = "alpha up"
    ALPHA_DOWN = "alpha down"
    CYCLE_COLOR = "colour preservation"
    PAUSE = "pause"
    QUIT = "quit"


@dataclass(frozen=True)
class Status:
    """What the HUD shows, updated every frame."""

    model: str
    style: str
    alpha: float
    preserve_color: str
    fps: float
    latency_ms: float
    dropped: int
    paused: bool


class FrameStylizer(Protocol):
    """What the loop needs of `engine.Stylizer`."""

    info: ModelInfo
    threads: int | None

    def prepare(self, styles: Sequence[StyleSource], controls: StyleControls) -> PreparedStyle: ...
    def stylize(self, frame: np.ndarray, styles: PreparedStyle) -> np.ndarray: ...
    def warm_up(self, height: int, width: int, prepared: PreparedStyle) -> None: ...
    def frames_in_flight(self, height: int, width: int) -> int: ...


class View(Protocol):
    """A window: shows frames with a HUD, turns key presses into actions (main thread only)."""

    def show(self, original_rgb: np.ndarray, stylized_rgb: np.ndarray, status: Status) -> None: ...
    def poll(self, wait_ms: int) -> list[Action]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StylePlan:
    """The looks to render. Each entry is one look (its styles mixed, or split by the mask, as in `adain image`);
    with several entries, `cycle_seconds` or the window's keys switch between them."""

    entries: tuple[tuple[StyleSource, ...], ...]
    controls: StyleControls = StyleControls()
    mask: Path | None = None
    cycle_seconds: float | None = None


@dataclass
class RunResult:
    """How a run went, for the closing summary."""

    info: SourceInfo | None = None
    source: SourceReport = field(default_factory=SourceReport)
    frames_out: int = 0
    seconds: float = 0.0
    stylize_seconds: float = 0.0  # summed over frames: with several frames in flight, more than the wall time
    first_frame_seconds: float = 0.0  # start to first frame out: one-off costs (compilation, warm-up) land here
    first_frames_stylize_seconds: float = 0.0  # of each frame worker's first frame, which can wait on those costs
    frames_in_flight: int = 1
    interrupted: str | None = None  # the signal's name when one stopped the run
    latencies_ms: list[float] = field(default_factory=list)
    outputs: list[Sink] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """Frames per second after the first frame, the rate a longer render keeps up."""
        rest = self.seconds - self.first_frame_seconds
        return (self.frames_out - 1) / rest if self.frames_out > 1 and rest > 0 else 0.0

    def latency_ms(self, percent: float, skip_first: int = 0) -> float:
        """Latency from capture to output at a percentile (50: median), in ms, over the frames after the first
        `skip_first` (those that waited on one-off costs)."""
        latencies = self.latencies_ms[skip_first:]
        return float(np.percentile(latencies, percent)) if latencies else 0.0


@dataclass(frozen=True)
class RunOptions:
    """max_frames: stop after this many output frames. final_on_stop: a signal ends the run normally (live
    recording: nothing is missing), instead of leaving the output marked as partial (a file render)."""

    max_frames: int | None = None
    final_on_stop: bool = False


@dataclass
class LiveControls:
    """The live state that keys change: which look, alpha, colour preservation, pause."""

    entry: int
    alpha: float
    preserve_color: str
    paused: bool = False

    def apply(self, action: Action, entries: int) -> None:
        if action is Action.NEXT_STYLE:
            self.entry = (self.entry + 1) % entries
        elif action is Action.PREVIOUS_STYLE:
            self.entry = (self.entry - 1) % entries
        elif action is Action.ALPHA_UP:
            self.alpha = round(min(1.0, self.alpha + ALPHA_STEP), 2)
        elif action is Action.ALPHA_DOWN:
            self.alpha = round(max(0.0, self.alpha - ALPHA_STEP), 2)
        elif action is Action.CYCLE_COLOR:
            self.preserve_color = PRESERVE_COLOR[(PRESERVE_COLOR.index(self.preserve_color) + 1) % len(PRESERVE_COLOR)]
        elif action is Action.PAUSE:
            self.paused = not self.paused


class _Looks:
    """The live controls and the prepared style for each (look, alpha, colour mode). Every look's statistics are
    computed before the first frame, so switching looks mid-run is a dictionary lookup, not a stall."""

    def __init__(self, stylizer: FrameStylizer, plan: StylePlan, mask: np.ndarray | None) -> None:
        self._stylizer, self._plan, self._mask = stylizer, plan, mask
        self.controls = LiveControls(0, plan.controls.alpha, plan.controls.preserve_color)
        self._prepared: dict[tuple[int, float, str], PreparedStyle] = {}
        for entry in range(len(plan.entries)):
            self._get(entry)

    def for_frame(self, frame: Frame) -> PreparedStyle:
        """The look for this frame: the chosen one, moved on every `cycle_seconds` of video time."""
        entry = self.controls.entry
        if self._plan.cycle_seconds:
            entry += int(frame.time // self._plan.cycle_seconds)
        return self._get(entry % len(self._plan.entries))

    def current(self) -> PreparedStyle:
        """The chosen look, as the first frame will see it."""
        return self._get(self.controls.entry % len(self._plan.entries))

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            self.controls.apply(action, len(self._plan.entries))

    def _get(self, entry: int) -> PreparedStyle:
        key = (entry, self.controls.alpha, self.controls.preserve_color)
        if key not in self._prepared:
            controls = replace(self._plan.controls, alpha=key[1], preserve_color=key[2], mask=self._mask)
            self._prepared[key] = self._stylizer.prepare(list(self._plan.entries[entry]), controls)
        return self._prepared[key]


class _InFlight(NamedTuple):
    """A frame being stylized, with the look it gets."""

    frame: Frame
    prepared: PreparedStyle
    future: Future[tuple[np.ndarray, float]]


class _Rate:
    """Frames per second over the last second or so."""

    def __init__(self, window_s: float = 1.0) -> None:
        self._times: list[float] = []
        self._window = window_s

    def tick(self, now: float) -> float:
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > self._window:
            self._times.pop(0)
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def run(open_source: Callable[[], Source], stylizer: FrameStylizer, plan: StylePlan,
        open_sinks: Callable[[SourceInfo], list[Sink]], view: Callable[[SourceInfo], View | None] = lambda _: None,
        options: RunOptions = RunOptions(), on_frame: Callable[[RunResult, Status], None] | None = None,
        on_start: Callable[[SourceInfo], None] | None = None) -> RunResult:
    """Stylize every frame of a source into the sinks; returns counts, timings and how it ended.

    Sources, sinks and the view are opened here, in that order, and closed here on every path.
    The output is marked complete only when the source ran out, `max_frames` was reached or the
    view asked to quit (or, with `final_on_stop`, a signal stopped a live run).
    """
    result = RunResult()
    with ExitStack() as stack:
        source = stack.enter_context(_closing(open_source()))
        info = result.info = source.info
        stopper = stack.enter_context(stop_on_signals(source.stop, "finishing the output"))
        mask = read_mask(plan.mask, info.width, info.height) if plan.mask is not None else None
        looks = _Looks(stylizer, plan, mask)
        sinks = open_sinks(info)
        for sink in sinks:
            stack.enter_context(_closing(sink))
        result.outputs = sinks
        window = view(info)
        if window is not None:
            stack.enter_context(_closing(window))
        if info.live:  # a new frame size pays for algorithm search and graph capture: before the clock starts
            stylizer.warm_up(info.height, info.width, looks.current())
        in_flight_max = 1 if info.live or window is not None else stylizer.frames_in_flight(info.height, info.width)
        workers = stack.enter_context(_closing(FrameWorkers(stylizer.stylize, in_flight_max, stylizer.threads)))
        result.frames_in_flight = workers.count
        if on_start is not None:
            on_start(info)
        rate = _Rate()
        in_flight: deque[_InFlight] = deque()

        def deliver() -> bool:
            """Write the oldest frame in flight to the sinks and the view; True when the view asked to quit."""
            frame, prepared, future = in_flight.popleft()
            stylized, seconds = future.result()
            result.stylize_seconds += seconds
            for sink in sinks:
                sink.write(frame, stylized)
            now = time.monotonic()
            result.frames_out += 1
            if result.frames_out == 1:
                result.first_frame_seconds = now - started
            if result.frames_out <= workers.count:
                result.first_frames_stylize_seconds += seconds
            result.latencies_ms.append((now - frame.captured) * 1000)
            status = Status(stylizer.info.name, prepared.label, looks.controls.alpha, looks.controls.preserve_color,
                            rate.tick(now), result.latencies_ms[-1], source.report.dropped, looks.controls.paused)
            quit_asked = window is not None and _interact(window, frame, stylized, status, looks, stylizer, stopper)
            if on_frame is not None:
                on_frame(result, status)
            return quit_asked

        started = time.monotonic()
        quit_asked = source_ended = False
        for frame in source:
            if stopper.signal:
                break
            prepared = looks.for_frame(frame)
            in_flight.append(_InFlight(frame, prepared, workers.submit(frame.rgb, prepared)))
            if len(in_flight) == workers.count:
                quit_asked = deliver()
            if quit_asked or (options.max_frames is not None
                              and result.frames_out + len(in_flight) >= options.max_frames):
                break
        else:
            source_ended = stopper.signal is None
        while in_flight and not quit_asked:  # frames already read are finished, even after a signal
            quit_asked = deliver()
        result.seconds = time.monotonic() - started
        result.interrupted = stopper.signal
        if stopper.signal is None or options.final_on_stop:
            for sink in sinks:
                sink.finish(source_ended)
    result.source = source.report
    return result


def _interact(window: View, frame: Frame, stylized: np.ndarray, status: Status, looks: _Looks,
              stylizer: FrameStylizer, stopper: SignalStop) -> bool:
    """Show the frame and act on keys; while paused, keep showing it (restylized when a control changes).
    Returns True when the view asked to quit."""
    window.show(frame.rgb, stylized, status)
    while True:
        actions = window.poll(30 if looks.controls.paused else 1)
        if Action.QUIT in actions or stopper.signal:
            return Action.QUIT in actions
        if actions:
            looks.apply(actions)
            prepared = looks.for_frame(frame)
            controls = looks.controls
            status = replace(status, style=prepared.label, alpha=controls.alpha,
                             preserve_color=controls.preserve_color, paused=controls.paused)
            window.show(frame.rgb, stylizer.stylize(frame.rgb, prepared), status)
        if not looks.controls.paused:
            return False


@contextmanager
def _closing(resource: Source | Sink | View | FrameWorkers) -> Iterator[Source | Sink | View | FrameWorkers]:
    try:
        yield resource
    finally:
        resource.close()
