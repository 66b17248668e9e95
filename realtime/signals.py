"""Ctrl-C and SIGTERM as a request to stop at the next safe point, so long work ends with its output whole."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

log = logging.getLogger(__name__)


@dataclass
class SignalStop:
    """The name of the signal that asked to stop (SIGINT or SIGTERM), or None."""

    signal: str | None = None


@contextmanager
def stop_on_signals(on_stop: Callable[[], None], finishing: str) -> Iterator[SignalStop]:
    """The first SIGINT/SIGTERM sets `signal`, logs what is being finished (`finishing`) and calls `on_stop`;
    the work checks `signal` at its next safe point. A second one raises KeyboardInterrupt at once, so a stuck
    run stays stoppable. Only the main thread can take signals; elsewhere this does nothing."""
    state = SignalStop()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum: int, _frame: object) -> None:
        if state.signal is not None:
            raise KeyboardInterrupt
        state.signal = signal.Signals(signum).name
        log.warning("%s: %s (press Ctrl-C again to stop at once)", state.signal, finishing)
        on_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
