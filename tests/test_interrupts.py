"""The Ctrl-C handler on its own (the CLI runs are in test_cli_errors.py)."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from dedupe_at_scale.cli.interrupts import GATE, _handler, install


class Finalized:
    def __del__(self) -> None:
        _handler(signal.SIGINT, sys._getframe())  # as if the Ctrl-C landed here


def test_a_ctrl_c_landing_in_a_finalizer_is_delivered_after_it(capsys):
    """Raised inside __del__, a KeyboardInterrupt is printed as "Exception
    ignored" with a traceback and lost (CI, 2026-12-04: Ray Data's
    Dataset.__del__); the handler delivers it again once __del__ returns."""
    restore = install()
    try:
        with pytest.raises(KeyboardInterrupt):
            Finalized()  # dropped at once: its __del__ runs here
            deadline = time.time() + 5
            while time.time() < deadline:
                time.sleep(0.01)
        assert not GATE.open  # interrupted once; a second press is ignored
    finally:
        restore()
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_ctrl_c_landing_where_ray_would_hang_is_delivered_after_it():
    """A KeyboardInterrupt raised inside Ray's GlobalState set-up dropped a
    half-made GCS accessor whose destructor never returned (CI, 2026-12-07):
    the handler delivers it again once that code has returned."""
    import ray._private.state

    from dedupe_at_scale.cli.interrupts import in_unsafe_ray_code

    # The pinned Ray still has the code the handler names.
    assert in_unsafe_ray_code(ray._private.state.GlobalState._connect_and_get_accessor.__code__)

    # A function of that name and file, in which the Ctrl-C lands.
    namespace: dict = {"_handler": _handler, "signal": signal, "sys": sys}
    exec(compile(  # noqa: S102
        "def _connect_and_get_accessor():\n"
        "    _handler(signal.SIGINT, sys._getframe())\n"
        "    return 'returned'\n",
        "/site-packages/ray/_private/state.py", "exec",
    ), namespace)  # fmt: skip
    restore = install()
    try:
        returned = None
        with pytest.raises(KeyboardInterrupt):
            returned = namespace["_connect_and_get_accessor"]()
            deadline = time.time() + 5
            while time.time() < deadline:
                time.sleep(0.01)
        assert returned == "returned"  # not raised inside it
        assert not GATE.open
    finally:
        restore()
