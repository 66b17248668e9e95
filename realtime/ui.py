"""The one rich console (on stderr, so stdout stays free for data) and progress-bar factories."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

console = Console(stderr=True)


def byte_progress() -> Progress:
    """A progress bar for downloads: bytes, speed, time left."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def item_progress(*extra: TextColumn, disable: bool = False) -> Progress:
    """A progress bar for counted work (images, frames, iterations), with optional extra text columns."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), *extra, console=console, disable=disable)


def print_wide(renderable: RenderableType, width: int) -> None:
    """Print on the console's stream at least `width` columns wide. A wide table squeezed into a narrow
    terminal (or 80 columns when output is piped) truncates its cells to "…", and rich's own
    `print(width=...)` never goes beyond the terminal's width. Silent when the console is (-q)."""
    wide = Console(file=console.file, width=max(console.width, width), force_terminal=console.is_terminal,
                   no_color=console.no_color, quiet=console.quiet)
    wide.print(renderable, crop=False)
