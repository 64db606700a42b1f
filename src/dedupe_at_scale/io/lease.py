"""One writer per output: a fenced lease file, OUT/_staging/lease.json.

A run takes the lease before it touches the output and gives it back when it
ends. A second run on the same output while the lease is held is refused at
once, naming the holder (host, pid, start time). The holder renews the lease
every `timeout / 4` seconds (at most RENEW_SECONDS); a lease is stale when its
process is gone (same host) or when it was not renewed for
output.lease_timeout_seconds (any host: on object storage a process elsewhere
cannot be asked). A stale lease is taken over with a warning: that is how a
killed run's command, run again, goes on.

The lease is a fence. Each renewal, each staged file a task writes, and each
commit step (seal, publish of every directory, the manifest) first checks
that the lease still carries this run's token. A run that finds another
token, or none, has been taken over (it stalled past the timeout: a GC pause,
a suspended laptop, a partitioned node): it stops at once with LeaseLostError
and touches nothing more.

Every change of the lease is a compare-and-swap where the store has one:
  local disk    an flock on _staging/lease.lock around read, compare and an
                atomic rename (one host, or a filesystem with working flock)
  S3            conditional writes: If-None-Match: * to take a free lease,
                If-Match: <etag> to renew, take over or remove one (AWS S3
                and SeaweedFS honour them; moto checks a condition and writes
                in two steps, so racing writes can both pass there; the first
                acquire checks that the store refuses a second If-None-Match
                write)
  other fsspec  best effort: read, compare, write, then read back after a
                moment; of two runs racing for a stale lease, both may believe
                they won for up to one renewal interval
"""

from __future__ import annotations

import _thread
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from dedupe_at_scale.io.lease_store import (
    ConflictError,
    LeaseStore,
    Record,
    S3LeaseStore,
    lease_store,
)
from dedupe_at_scale.io.storage import Location, StorageError

log = logging.getLogger(__name__)

LEASE = "lease.json"
RENEW_SECONDS = 30.0


class OutputBusyError(StorageError):
    """Another run holds the output's lease."""


class LeaseLostError(StorageError):
    """This run's lease was taken over: it must not touch the output again."""


@dataclass(frozen=True)
class Fence:
    """What a task needs to check that its run still holds the output:
    picklable, so that Ray tasks get it with their arguments."""

    location: Location
    path: str
    token: str

    def check(self) -> None:
        holder, _ = lease_store(self.location, self.path).read()
        self.require(holder)

    def require(self, holder: Record | None) -> None:
        """LeaseLostError unless `holder` (the lease as read) is this run's."""
        if holder is None or holder.get("token") != self.token:
            raise LeaseLostError(lost_message(self.location.uri, holder))


class Lease:
    def __init__(self, location: Location, path: str, timeout_seconds: float):
        self.location, self.path, self.timeout = location, path, timeout_seconds
        self.store = lease_store(location, path)
        self.token = uuid.uuid4().hex
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now(),
            "token": self.token,
        }
        self.renew_seconds = min(RENEW_SECONDS, timeout_seconds / 4)
        self.lost: LeaseLostError | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.held = False

    @property
    def fence(self) -> Fence:
        return Fence(self.location, self.path, self.token)

    def acquire(self) -> None:
        """Take the lease or raise OutputBusyError; a stale one is taken over."""
        with self.store.exclusive(create=True):
            holder, version = self.store.read()
            if holder is not None and not self._stale(holder):
                raise OutputBusyError(self._busy_message(holder))
            if holder is not None:
                log.warning(
                    "%s: taking over the lease of a run that is gone (%s)",
                    self.location.uri, _describe(holder),
                )  # fmt: skip
            record = self._fresh()
            try:
                self.store.swap(record, version)
            except ConflictError:
                raise OutputBusyError(self._busy_message(self.store.read()[0] or {})) from None
        if isinstance(self.store, S3LeaseStore) and not self.store.honours_conditions(record):
            log.warning(
                "%s: the store ignores conditional writes (If-None-Match); the lease falls "
                "back to best effort", self.location.uri,
            )  # fmt: skip
            self.store = LeaseStore(self.location, self.path)
        self.held = True
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="lease renewer")
        self._renewer.start()

    def check(self) -> None:
        """Raise LeaseLostError unless the lease still carries our token."""
        if self.lost is not None:
            raise self.lost
        self._require(self.store.read()[0])

    def renew(self) -> None:
        """Write a fresh renewal time, only over our own lease."""
        with self.store.exclusive():
            holder, version = self.store.read()
            self._require(holder)
            try:
                self.store.swap(self._fresh(), version)
            except ConflictError:  # changed between our read and our write
                self.lost = LeaseLostError(lost_message(self.location.uri, self.store.read()[0]))
                raise self.lost from None

    def _require(self, holder: Record | None) -> None:
        """The fence's check on a lease as read; a loss is remembered."""
        try:
            self.fence.require(holder)
        except LeaseLostError as lost:
            self.lost = lost
            raise

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()

    def release(self) -> None:
        """Give the lease back (if it is still ours). Safe to repeat."""
        self.stop_renewing()
        if not self.held:
            return
        self.held = False
        try:
            with self.store.exclusive():
                holder, version = self.store.read()
                if holder is not None and holder.get("token") == self.token:
                    self.store.swap(None, version)
        except (OSError, ConflictError) as exc:  # the next run sees a dead holder
            log.warning("%s: could not remove the lease: %s", self.location.uri, exc)

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            try:
                self.renew()
            except LeaseLostError:
                # Stop the run where it stands: the main thread gets a
                # KeyboardInterrupt, which execute() turns into self.lost.
                log.error("%s", self.lost)
                _thread.interrupt_main()
                return
            except OSError as exc:
                log.warning("%s: could not renew the lease: %s", self.location.uri, exc)

    def _fresh(self) -> Record:
        return {**self.record, "renewed": time.time()}

    def _stale(self, holder: Record) -> bool:
        if "renewed" not in holder:
            return True
        if time.time() - float(holder["renewed"]) > self.timeout:
            return True
        if holder.get("host") == socket.gethostname():
            return not _running(int(holder.get("pid", -1)))
        return False

    def _busy_message(self, holder: Record) -> str:
        return (
            f"{self.location.uri} is being written by another run ({_describe(holder)}; "
            f"its lease is {self.path}). Wait for it to end; a lease whose process is gone, "
            f"or that was not renewed for output.lease_timeout_seconds ({self.timeout:g} s), "
            "is taken over"
        )


def lost_message(uri: str, holder: Record | None) -> str:
    now = (
        f"it is now held by {_describe(holder)}"
        if holder
        else "the lease is gone: the run that took it over has finished (or given up)"
    )
    return (
        f"{uri}: this run lost its lease on the output to another run ({now}). It had not "
        "renewed the lease within output.lease_timeout_seconds (a stall: a pause, a "
        "suspended machine, a lost network), so it stopped without publishing anything"
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


def _describe(holder: Record) -> str:
    if not holder:
        return "unknown holder"
    renewed = holder.get("renewed")
    ago = f", renewed {time.time() - float(renewed):.0f} s ago" if renewed else ""
    return (
        f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}" + ago
    )
