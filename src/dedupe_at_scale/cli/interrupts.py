"""Ctrl-C for the command line: a KeyboardInterrupt while the command's work
runs, nothing once it is over.

Ignoring SIGINT around the teardown (a `with` block) leaves a window: a
Ctrl-C that lands as the teardown function is entered raises there, after
the run's last line, as a traceback. Here the handler itself decides, from a
flag the command clears with a plain attribute store (Python runs signal
handlers at calls and loops, never inside a store), so there is no window.
A Ctrl-C that lands inside a finalizer, or inside Ray code that an
exception leaves hung, is delivered again after it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any


class Gate:
    """Whether a Ctrl-C now interrupts the command. Close it with
    `GATE.open = False`, not through a method call (see the module's text)."""

    def __init__(self) -> None:
        self.open = False


GATE = Gate()


def _handler(signum: int, frame: FrameType | None) -> None:
    if not GATE.open:
        return
    if _must_wait(frame):
        # Raised inside a __del__ (Ray Data's Dataset has one), the interrupt
        # would be printed as "Exception ignored" and dropped; inside
        # UNSAFE_RAY_CODE it hangs the process. Deliver it again once the
        # frame has returned.
        again = threading.Timer(REDELIVER_S, os.kill, (os.getpid(), signal.SIGINT))
        again.daemon = True  # never holds the interpreter's exit
        again.start()
        return
    GATE.open = False  # a second Ctrl-C while the first is handled is ignored
    raise KeyboardInterrupt


REDELIVER_S = 0.05


# (file, function) of Ray code that a KeyboardInterrupt leaves hung. Ray
# Data asks the GCS for spill stats at the end of every execution, through a
# new GlobalStateAccessor; an interrupt raised after the accessor is made
# and before it is stored drops it unconnected, and its destructor then
# waits forever in pthread_cond_destroy (CI, 2026-12-07: a run that never
# ended after Ctrl-C; py-spy --native showed the main thread there).
UNSAFE_RAY_CODE = frozenset({("ray/_private/state.py", "_connect_and_get_accessor")})


def in_unsafe_ray_code(code: CodeType) -> bool:
    """Whether `code` is one of UNSAFE_RAY_CODE."""
    path = code.co_filename.replace("\\", "/")
    return any(path.endswith(f) and code.co_name == name for f, name in UNSAFE_RAY_CODE)


def _must_wait(frame: FrameType | None) -> bool:
    """Whether the interrupt lands inside a finalizer or UNSAFE_RAY_CODE."""
    while frame is not None:
        if frame.f_code.co_name == "__del__" or in_unsafe_ray_code(frame.f_code):
            return True
        frame = frame.f_back
    return False


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
