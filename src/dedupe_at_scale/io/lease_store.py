"""Where a lease lives, and its compare-and-swap on each kind of store
(io/lease.py says why each is enough): an flock and an atomic rename on
local disk, conditional writes on S3, read-write-read elsewhere."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from dedupe_at_scale.io.storage import S3_PROTOCOLS, Location, protocol_of

LOCK = "lease.lock"  # local disk: the flock that makes read-compare-write atomic


SETTLE_SECONDS = 0.5  # best-effort stores: between writing a lease and reading it back


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
        return parse_record(text), text

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
        return parse_record(data.decode("utf-8")), etag

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


def parse_record(text: str) -> Record:
    try:
        record = json.loads(text)
    except ValueError:
        return {}  # unreadable: a writer was cut off; treated as stale
    return record if isinstance(record, dict) else {}
