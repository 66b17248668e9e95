"""The preview window (OpenCV highgui, main thread only): the stylized view, a small HUD, and hotkeys.

Keys the loop acts on: n/p (or right/left) next/previous style, +/- (or up/down) alpha, c colour preservation, space pause,
q or Esc quit. Keys the window handles itself: b original|stylized side by side, s snapshot to PNG,
f fullscreen, h HUD on/off. Closing the window quits too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import UserError
from .files import free_name
from .images import rgb_to_bgr, write_image
from .pipeline import Action, Status

log = logging.getLogger(__name__)

KEY_ACTIONS = {
    ord("n"): Action.NEXT_STYLE, ord("p"): Action.PREVIOUS_STYLE,
    ord("+"): Action.ALPHA_UP, ord("="): Action.ALPHA_UP, ord("-"): Action.ALPHA_DOWN,
    ord("c"): Action.CYCLE_COLOR, ord(" "): Action.PAUSE, ord("q"): Action.QUIT, 27: Action.QUIT,
    # arrow keys as OpenCV's Qt and GTK back ends report them: right/left style, up/down alpha
    0x1000014: Action.NEXT_STYLE, 0x1000012: Action.PREVIOUS_STYLE, 0x1000013: Action.ALPHA_UP,
    0x1000015: Action.ALPHA_DOWN, 65363: Action.NEXT_STYLE, 65361: Action.PREVIOUS_STYLE,
    65362: Action.ALPHA_UP, 65364: Action.ALPHA_DOWN,
}
HELP = "keys: n/p style, +/- alpha, c colour, b side by side, s snapshot, space pause, f fullscreen, h HUD, q quit"
_HUD_BACKGROUND = 0.35  # how much of the picture shows through the HUD's panel


class Window:
    """A resizable window titled `title`, sized to the first frame."""

    def __init__(self, title: str = "adain", snapshot_dir: Path = Path(".")) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("no display to open a window on (DISPLAY is not set); use --no-window")
        if not snapshot_dir.is_dir():
            raise UserError(f"--snapshot-dir {snapshot_dir}: no such folder")
        self.title = title
        self.snapshot_dir = snapshot_dir
        self.side_by_side = False
        self.hud = True
        self._fullscreen = False
        self._shown: tuple[np.ndarray, str] | None = None  # the last picture without HUD, and its style
        self._last: tuple[np.ndarray, np.ndarray, Status] | None = None  # the last show() call
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        self._sized = False
        log.info(HELP)

    def show(self, original_rgb: np.ndarray, stylized_rgb: np.ndarray, status: Status) -> None:
        self._last = (original_rgb, stylized_rgb, status)
        picture = np.hstack([original_rgb, stylized_rgb]) if self.side_by_side else stylized_rgb
        self._shown = (picture, status.style)
        bgr = rgb_to_bgr(picture)
        if self.hud:
            draw_hud(bgr, hud_lines(status), reference_width=stylized_rgb.shape[1])
        if not self._sized:
            cv2.resizeWindow(self.title, bgr.shape[1], bgr.shape[0])
            self._sized = True
        cv2.imshow(self.title, bgr)

    def poll(self, wait_ms: int = 1) -> list[Action]:
        """Key presses since the last call (waiting up to `wait_ms`), as loop actions."""
        key = cv2.waitKeyEx(max(1, wait_ms))
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return [Action.QUIT]  # closed with the mouse
        if key == -1:
            return []
        if key in KEY_ACTIONS:
            return [KEY_ACTIONS[key]]
        if key in (ord("b"), ord("h")):
            if key == ord("b"):
                self.side_by_side = not self.side_by_side
                self._sized = False
            else:
                self.hud = not self.hud
            if self._last is not None:
                self.show(*self._last)  # redraw now: a paused picture would otherwise keep the old look
        elif key == ord("f"):
            self._fullscreen = not self._fullscreen
            cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN,
                                  cv2.WINDOW_FULLSCREEN if self._fullscreen else cv2.WINDOW_NORMAL)
        elif key == ord("s"):
            self.snapshot()
        return []

    def snapshot(self) -> Path | None:
        """Save what the window shows (without the HUD) as a PNG in `snapshot_dir`; a failed save (a full
        disk, a folder gone) is logged and the session goes on."""
        if self._shown is None:
            return None
        picture, style = self._shown
        path = snapshot_path(self.snapshot_dir, style, time.time_ns())
        try:
            write_image(path, picture)
        except OSError as exc:
            log.error("snapshot not saved: %s: %s", path, exc.strerror or exc)
            return None
        log.info("snapshot: %s", path)
        return path

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)  # lets the GUI toolkit process the destroy


def hud_lines(status: Status) -> list[str]:
    """The HUD's text: speed, model and look, controls."""
    lines = [f"{status.fps:5.1f} fps  {status.latency_ms:4.0f} ms" + (f"  dropped {status.dropped}"
                                                                       if status.dropped else ""),
             f"{status.model}  {status.style}",
             f"alpha {status.alpha:.1f}" + (f"  colour: {status.preserve_color}"
                                            if status.preserve_color != "none" else "")]
    if status.paused:
        lines.append("paused")
    return lines


def draw_hud(bgr: np.ndarray, lines: list[str], reference_width: int) -> None:
    """Draw text lines on a darkened panel in the top-left corner, in place, sized for a frame
    `reference_width` pixels wide (side by side, the picture is two frames wide)."""
    scale = max(0.35, min(1.0, reference_width / 1280))
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    sizes = [cv2.getTextSize(line, font, scale, thickness)[0] for line in lines]
    line_height = max(h for _, h in sizes) + round(8 * scale)
    pad = round(6 * scale)
    width = min(bgr.shape[1], max(w for w, _ in sizes) + 2 * pad)
    height = min(bgr.shape[0], line_height * len(lines) + pad)
    panel = bgr[:height, :width]
    panel[:] = (panel * _HUD_BACKGROUND).astype(np.uint8)
    for number, line in enumerate(lines, start=1):
        cv2.putText(bgr, line, (pad, number * line_height), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def snapshot_path(folder: Path, style: str, now_ns: int) -> Path:
    """adain-<style>-<YYYYmmdd-HHMMSS>-<ms>.png in `folder`, local time, with -2, -3... where that name is
    taken: a snapshot never replaces another file."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_ns // 1_000_000_000))
    return free_name(folder / f"adain-{style}-{stamp}-{now_ns // 1_000_000 % 1000:03d}.png")

