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
