"""Ctrl-C for the command line: a KeyboardInterrupt while the command's work
runs, nothing once it is over.

Ignoring SIGINT around the teardown (a `with` block) leaves a window: a
Ctrl-C that lands as the teardown function is entered raises there, after
the run's last line, as a traceback. Here the handler itself decides, from a
flag the command clears with a plain attribute store (Python runs signal
handlers at calls and loops, never inside a store), so there is no window."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class Gate:
    """Whether a Ctrl-C now interrupts the command. Close it with
    `GATE.open = False`, not through a method call (see the module's text)."""

    def __init__(self) -> None:
        self.open = False


GATE = Gate()


def _handler(signum: int, frame: FrameType | None) -> None:
    if GATE.open:
        GATE.open = False  # a second Ctrl-C while the first is handled is ignored
        raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Open the gate with its handler in place; returns what puts the
    previous handler back (nothing to do off the main thread, where Python
    keeps signals away and a caller runs main() as a library)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: Any = signal.signal(signal.SIGINT, _handler)
    GATE.open = True

    def restore() -> None:
        GATE.open = False
        signal.signal(signal.SIGINT, previous)

    return restore
