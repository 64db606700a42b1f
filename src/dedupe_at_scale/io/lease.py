"""One writer per output: a lease file, OUT/_staging/lease.json.

A run takes the lease before it touches the output and gives it back when it
ends. A second run on the same output while the lease is held is refused at
once, naming the holder (host, pid, start time). The holder renews the lease
every RENEW_SECONDS; a lease is stale when its process is gone (same host) or
when it was not renewed for output.lease_timeout_seconds (any host: on object
storage a process elsewhere cannot be asked). A stale lease is taken over
with a warning: that is how a killed run's command, run again, goes on.

On local disk the lease file is created only if absent (atomically). Object
stores have no create-if-absent here, so there a run writes the lease, waits
a moment and reads it back: of two runs starting together, the one whose
lease is not there is refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from dedupe_at_scale.io.storage import Location, StorageError, read_json, write_json

log = logging.getLogger(__name__)

LEASE = "lease.json"
RENEW_SECONDS = 30.0
SETTLE_SECONDS = 0.5  # between writing a lease and reading it back


class OutputBusyError(StorageError):
    """Another run holds the output's lease."""


class Lease:
    def __init__(self, location: Location, path: str, timeout_seconds: float):
        self.location, self.path, self.timeout = location, path, timeout_seconds
        self.token = uuid.uuid4().hex
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now(),
            "token": self.token,
        }
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.held = False

    def acquire(self) -> None:
        """Take the lease or raise OutputBusyError; a stale one is taken over."""
        holder = self._read()
        if holder is not None and not self._stale(holder):
            raise OutputBusyError(self._busy_message(holder))
        if holder is not None:
            log.warning(
                "%s: taking over the lease of a run that is gone (%s)",
                self.location.uri, _describe(holder),
            )  # fmt: skip
            self.location.fs.rm(self.path)
        if self.location.is_local:
            self._create_exclusively()
        else:
            self._write()
            time.sleep(SETTLE_SECONDS)
        holder = self._read()
        if holder is None or holder.get("token") != self.token:
            raise OutputBusyError(self._busy_message(holder or {}))
        self.held = True
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()

    def _create_exclusively(self) -> None:
        """Local disk: the file is created only if absent, atomically."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            with open(self.path, "x", encoding="utf-8") as handle:
                json.dump({**self.record, "renewed": time.time()}, handle)
        except FileExistsError:
            pass  # another run was quicker: the read-back names it

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()

    def release(self) -> None:
        """Give the lease back (if it is still ours). Safe to repeat."""
        self.stop_renewing()
        if not self.held:
            return
        self.held = False
        try:
            holder = self._read()
            if holder is not None and holder.get("token") == self.token:
                self.location.fs.rm(self.path)
        except OSError as exc:  # the next run sees a dead holder and takes over
            log.warning("%s: could not remove the lease: %s", self.location.uri, exc)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self._write()
            except OSError as exc:
                log.warning("%s: could not renew the lease: %s", self.location.uri, exc)

    def _write(self) -> None:
        self.location.fs.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_json(self.location, self.path, {**self.record, "renewed": time.time()})

    def _read(self) -> dict[str, Any] | None:
        self.location.refresh()
        if not self.location.fs.exists(self.path):
            return None
        try:
            return read_json(self.location, self.path)
        except (OSError, ValueError):
            return {}  # unreadable: a writer was cut off; treated as stale

    def _stale(self, holder: dict[str, Any]) -> bool:
        if "renewed" not in holder:
            return True
        if time.time() - float(holder["renewed"]) > self.timeout:
            return True
        if holder.get("host") == socket.gethostname():
            return not _running(int(holder.get("pid", -1)))
        return False

    def _busy_message(self, holder: dict[str, Any]) -> str:
        return (
            f"{self.location.uri} is being written by another run ({_describe(holder)}; "
            f"its lease is {self.path}). Wait for it to end; a lease whose process is gone, "
            f"or that was not renewed for output.lease_timeout_seconds ({self.timeout:g} s), "
            "is taken over"
        )


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # no signal: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "unknown holder"
    renewed = holder.get("renewed")
    ago = f", renewed {time.time() - float(renewed):.0f} s ago" if renewed else ""
    return (
        f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}" + ago
    )
