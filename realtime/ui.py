"""The one rich console (on stderr, so stdout stays free for data) and progress-bar factories."""

from __future__ import annotations

from rich.console import Console
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
