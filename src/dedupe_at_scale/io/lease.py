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
                If-Match: <etag> to renew, take over or remove one (AWS S3,
                SeaweedFS and moto honour them; the first acquire checks that
                the store refuses a second If-None-Match write)
  other fsspec  best effort: read, compare, write, then read back after a
                moment; of two runs racing for a stale lease, both may believe
                they won for up to one renewal interval
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dedupe_at_scale.io.storage import S3_PROTOCOLS, Location, StorageError, protocol_of

log = logging.getLogger(__name__)

LEASE = "lease.json"
LOCK = "lease.lock"  # local disk: the flock that makes read-compare-write atomic
RENEW_SECONDS = 30.0
SETTLE_SECONDS = 0.5  # best-effort stores: between writing a lease and reading it back


class OutputBusyError(StorageError):
    """Another run holds the output's lease."""


class LeaseLostError(StorageError):
    """This run's lease was taken over: it must not touch the output again."""


class ConflictError(Exception):
    """A conditional write found the lease changed since it was read."""


Record = dict[str, Any]


class LeaseStore:
    """Read and compare-and-swap the lease object. A version is what the
    store compares (an S3 ETag, or the record's text)."""

    def __init__(self, location: Location, path: str):
        self.location, self.path = location, path

    def read(self) -> tuple[Record | None, str | None]:
        self.location.refresh()
        fs = self.location.fs
        if not fs.exists(self.path):
            return None, None
        try:
            with fs.open(self.path, "rb") as handle:
                text = handle.read().decode("utf-8")
        except FileNotFoundError:
            return None, None
        return _parse(text), text

    def swap(self, record: Record | None, expected: str | None) -> None:
        """Replace the lease whose version is `expected` (None: absent) by
        `record` (None: remove it); ConflictError if it changed meanwhile."""
        _, current = self.read()
        if current != expected:
            raise ConflictError
        fs = self.location.fs
        if record is None:
            fs.rm(self.path)
            return
        fs.makedirs(os.path.dirname(self.path), exist_ok=True)
        text = json.dumps(record)
        with fs.open(self.path, "wb") as handle:
            handle.write(text.encode("utf-8"))
        time.sleep(SETTLE_SECONDS)
        if self.read()[1] != text:  # a racing writer was later
            raise ConflictError

    @contextlib.contextmanager
    def exclusive(self, create: bool = False) -> Iterator[None]:
        yield


class LocalLeaseStore(LeaseStore):
    @contextlib.contextmanager
    def exclusive(self, create: bool = False) -> Iterator[None]:
        """Hold the lock; only acquiring (`create`) may make the directory:
        a run that was taken over must not bring back a published _staging/."""
        directory = os.path.dirname(self.path)
        if create:
            os.makedirs(directory, exist_ok=True)
        elif not os.path.isdir(directory):
            yield  # no lease at all: the read says so
            return
        with open(os.path.join(directory, LOCK), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def swap(self, record: Record | None, expected: str | None) -> None:
        # Callers hold exclusive(): nothing changes between the read and the rename.
        if self.read()[1] != expected:
            raise ConflictError
        if record is None:
            os.remove(self.path)
            return
        temporary = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record))
        os.replace(temporary, self.path)


class S3LeaseStore(LeaseStore):
    """Conditional PUT and DELETE on the lease object (through s3fs's client)."""

    def __init__(self, location: Location, path: str):
        super().__init__(location, path)
        self.bucket, self.key, _ = location.fs.split_path(path)

    def read(self) -> tuple[Record | None, str | None]:
        from fsspec.asyn import sync

        async def get() -> tuple[bytes, str]:
            fs = self.location.fs
            response = await fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            body = response["Body"]
            try:
                return await body.read(), response["ETag"]
            finally:
                body.close()

        try:
            data, etag = sync(self.location.fs.loop, get)
        except FileNotFoundError:
            return None, None
        return _parse(data.decode("utf-8")), etag

    def swap(self, record: Record | None, expected: str | None) -> None:
        fs, where = self.location.fs, {"Bucket": self.bucket, "Key": self.key}
        try:
            if record is None:
                fs.call_s3("delete_object", **where, IfMatch=expected)
                return
            condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
            body = json.dumps(record).encode("utf-8")
            fs.call_s3("put_object", **where, Body=body, **condition)
        except FileNotFoundError as exc:  # If-Match on a lease that is gone
            raise ConflictError from exc
        except OSError as exc:
            if _refused(exc):
                raise ConflictError from exc
            raise

    def honours_conditions(self, record: Record) -> bool:
        """Whether the store refuses an If-None-Match: * write over the lease
        it holds (some S3-compatible servers ignore the header). `record` is
        the lease as written, so that a store that ignores it changes nothing."""
        try:
            self.location.fs.call_s3(
                "put_object", Bucket=self.bucket, Key=self.key,
                Body=json.dumps(record).encode("utf-8"), IfNoneMatch="*",
            )  # fmt: skip
        except OSError as exc:
            if _refused(exc):
                return True
            raise
        return False


def _refused(exc: OSError) -> bool:
    """A conditional write refused: 412 PreconditionFailed, or 409 for a
    racing conditional write. s3fs turns both into OSErrors; the botocore
    error it came from says which."""
    if isinstance(exc, FileExistsError):  # s3fs: 412 naming If-None-Match
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def lease_store(location: Location, path: str) -> LeaseStore:
    if location.is_local:
        return LocalLeaseStore(location, path)
    if protocol_of(location.uri) in S3_PROTOCOLS:
        return S3LeaseStore(location, path)
    return LeaseStore(location, path)


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


def _parse(text: str) -> Record:
    try:
        record = json.loads(text)
    except ValueError:
        return {}  # unreadable: a writer was cut off; treated as stale
    return record if isinstance(record, dict) else {}


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
