"""The one place that turns URIs into filesystems and paths.

Local paths and every fsspec URL go through the same code: fsspec for listing
and globbing, a pyarrow filesystem (native for local disk, fsspec-wrapped
otherwise) for reading and writing Parquet.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile
from pydantic import Field

from dedupe_at_scale.sections import Require, Section

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

GLOB_CHARS = ("*", "?", "[")
S3_PROTOCOLS = ("s3", "s3a")
# Fail in seconds, not minutes, when an endpoint is down; users may override.
S3_DEFAULT_CONFIG = {
    "connect_timeout": 10,
    "read_timeout": 30,
    "retries": {"max_attempts": 4, "mode": "standard"},
}
SECRET_WORDS = ("secret", "token", "password", "passwd", "credential", "key")
UNREACHABLE_HINTS = (
    "could not connect", "connect timeout", "connection refused", "endpoint url",
    "name or service not known",
)  # fmt: skip
CREDENTIAL_HINTS = (
    "invalidaccesskeyid", "access key id", "signaturedoesnotmatch", "access denied",
    "forbidden", "403", "nocredentials", "unable to locate credentials",
)  # fmt: skip


class StorageConfig(Section):
    """How s3:// (and other fsspec) URIs are opened; credentials otherwise come
    from the usual AWS environment variables, profile or instance role."""

    # An S3-compatible endpoint (MinIO, Ceph, R2, a local test server); null: AWS.
    endpoint_url: str | None = None
    region: str | None = None
    # Unsigned requests, for public buckets.
    anonymous: bool = False
    # Passed as-is to the fsspec filesystem of every non-local URI
    # (s3fs: profile, key, secret, client_kwargs, config_kwargs, ...).
    options: dict[str, Any] = Field(default_factory=dict)
    # Seconds the first request to a remote store may wait for an answer:
    # botocore and s3fs each retry a read timeout, so an endpoint that accepts
    # connections and never answers would otherwise hold the job for minutes.
    first_answer_seconds: float = 30

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.first_answer_seconds > 0, "storage.first_answer_seconds", "must be positive")


class StorageError(RuntimeError):
    """A URI cannot be read or written; the message names it."""


@dataclass
class Location:
    """A URI resolved to a filesystem and a path on it."""

    uri: str
    fs: fsspec.AbstractFileSystem
    path: str

    @property
    def arrow_fs(self) -> pafs.FileSystem:
        if isinstance(self.fs, LocalFileSystem):
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def join(self, *parts: str) -> str:
        return posixpath.join(self.path, *parts)

    def display(self, path: str) -> str:
        """A path on this filesystem written the way the user wrote the URI."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if protocol in ("file", "local"):
            return path
        return f"{protocol}://{path}"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def refresh(self) -> None:
        """Forget cached listings: other processes (Ray workers) write here."""
        self.fs.invalidate_cache()


def probe(location: Location, seconds: float) -> None:
    """The first request to a remote store, with a deadline. Errors other
    than silence are left to the request that follows, which names them
    (storage.first_answer_seconds: why the deadline)."""
    if location.is_local:
        return
    _refuse_closed_endpoint(location, seconds)
    answered = threading.Event()

    def ask() -> None:
        try:
            location.fs.exists(location.path)
        except Exception:  # reported by the next request, with its own message
            pass
        answered.set()

    threading.Thread(target=ask, daemon=True, name=f"probe {location.uri}").start()
    if not answered.wait(seconds):
        raise StorageError(
            f"{location.uri}: the endpoint accepted the connection but sent no answer within "
            f"{seconds:g} s (is the endpoint reachable, and is it an S3 endpoint? check "
            "storage.endpoint_url)"
        )


def _refuse_closed_endpoint(location: Location, seconds: float) -> None:
    """A configured endpoint that refuses connections is an error at once:
    botocore and s3fs would retry it for half a minute per URI first."""
    endpoint = getattr(location.fs, "endpoint_url", None)
    if not endpoint:
        return
    parts = urllib.parse.urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=seconds).close()
    except ConnectionRefusedError as exc:
        raise StorageError(
            f"{location.uri}: the endpoint {endpoint} refused the connection (is it running "
            "and is that its port? check storage.endpoint_url)"
        ) from exc
    except OSError:
        return  # no answer, or a name not resolved: the probe and the requests say which


def protocol_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"


def storage_options(uri: str, storage: StorageConfig | None) -> dict[str, Any]:
    """fsspec options for one URI: the S3 settings for s3://, `options` for
    every remote scheme, nothing for local paths."""
    if storage is None or protocol_of(uri) in ("file", "local"):
        return {}
    options: dict[str, Any] = {}
    if protocol_of(uri) in S3_PROTOCOLS:
        options["config_kwargs"] = dict(S3_DEFAULT_CONFIG)
        if storage.endpoint_url:
            options["endpoint_url"] = storage.endpoint_url
        if storage.region:
            options["client_kwargs"] = {"region_name": storage.region}
        if storage.anonymous:
            options["anon"] = True
    return {**options, **storage.options}


def is_secret_name(name: str) -> bool:
    """An option or environment variable name that holds a credential."""
    return name != "endpoint_url" and any(word in name.lower() for word in SECRET_WORDS)


def redact(options: dict[str, Any]) -> dict[str, Any]:
    """Options with credential values hidden, for manifests and logs."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, dict):
            out[name] = redact(value)
        elif is_secret_name(name):
            out[name] = "***"
        else:
            out[name] = value
    return out


def secret_options(options: dict[str, Any], prefix: str = "storage.options") -> list[str]:
    """Dotted names of the credential values in `options`."""
    found = []
    for name, value in options.items():
        if isinstance(value, dict):
            found += secret_options(value, f"{prefix}.{name}")
        elif is_secret_name(name):
            found.append(f"{prefix}.{name}")
    return found


def resolve(uri: str, storage: StorageConfig | None = None) -> Location:
    try:
        fs, path = fsspec.core.url_to_fs(uri, **storage_options(uri, storage))
    except (ValueError, ImportError, TypeError) as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc
    return Location(uri=uri, fs=fs, path=path.rstrip("/") or path)


def overlaps(a: Location, b: Location) -> bool:
    """Whether one location lies inside the other (same filesystem)."""
    if a.fs.protocol != b.fs.protocol:
        return False
    pa_, pb = _normalized(a), _normalized(b)
    return pa_ == pb or pa_.startswith(pb + "/") or pb.startswith(pa_ + "/")


def glob_prefix(path: str) -> str:
    """The part of a path before its first glob character."""
    for ch in GLOB_CHARS:
        path = path.split(ch)[0]
    return path


def _normalized(location: Location) -> str:
    path = glob_prefix(location.path)
    if location.is_local:
        path = os.path.realpath(path)
    return path.rstrip("/")


PARQUET_SUFFIXES = (".parquet", ".pq")
NOT_PARQUET = "not *.parquet or *.pq"
HIDDEN = "under a name starting with _ or . (Spark's _temporary, _SUCCESS, .crc, ...)"


@dataclass(frozen=True)
class InputListing:
    """The input's Parquet files, sorted; the root generated ids (and Hive
    partition directories) are relative to; and what was left out, with why."""

    files: list[str]
    root: str
    skipped: dict[str, str]  # path relative to the root -> why it is not read


def list_input_files(location: Location) -> InputListing:
    """Input Parquet files under a directory or matching a glob. Paths with a
    part (below the root) that starts with _ or . are metadata or unfinished
    writes, as for Spark, Hive and pyarrow: they are skipped, and listed."""
    fs, path = location.fs, location.path
    try:
        location.refresh()
        if any(ch in path for ch in GLOB_CHARS):
            root = glob_prefix(path)
            root = root if root.endswith("/") else posixpath.dirname(root)
            found = {p: None for p in fs.glob(path) if fs.isfile(p)}
        elif fs.isdir(path):
            root = path
            found = {
                p: None if p.endswith(PARQUET_SUFFIXES) else NOT_PARQUET for p in fs.find(path)
            }
        elif fs.isfile(path):  # named by the user: read whatever its name
            return InputListing([path], posixpath.dirname(path).rstrip("/"), {})
        else:
            raise StorageError(f"input not found: {location.uri}")
    except StorageError:
        raise
    except Exception as exc:  # botocore / aiohttp errors are not OSErrors
        raise StorageError(f"cannot list input {location.uri}: {describe_error(exc)}") from exc
    root = root.rstrip("/")
    relative = {p: posixpath.relpath(p, root) if root else p for p in found}
    for p in found:
        if any(part.startswith(("_", ".")) for part in relative[p].split("/")):
            found[p] = HIDDEN
    files = sorted(p for p, reason in found.items() if reason is None)
    skipped = {relative[p]: reason for p, reason in sorted(found.items()) if reason is not None}
    if not files:
        left_out = f" ({len(skipped)} other paths: {describe_skipped(skipped)})" if skipped else ""
        raise StorageError(f"no Parquet files (*.parquet, *.pq) found at {location.uri}{left_out}")
    return InputListing(files, root, skipped)


def describe_skipped(skipped: dict[str, str], shown: int = 3) -> str:
    """A few of the skipped paths, each with why, for a message."""
    items = [f"{p} ({reason})" for p, reason in list(skipped.items())[:shown]]
    more = f", and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return ", ".join(items) + more


def remove_directory(location: Location, path: str) -> None:
    """Delete the directory objects under and of `path/` on an S3 store that
    keeps them (SeaweedFS lists an emptied prefix until its directory is
    deleted, and deletes only directories without subdirectories: deepest
    first). Elsewhere there are none to list, and the one delete is a no-op."""
    if protocol_of(location.uri) not in S3_PROTOCOLS:
        return
    bucket, key, _ = location.fs.split_path(path)
    prefixes, pending = [], [key.rstrip("/") + "/"]
    while pending:
        prefix = pending.pop()
        prefixes.append(prefix)
        pages = location.fs.call_s3(
            "list_objects_v2", Bucket=bucket, Prefix=prefix, Delimiter="/"
        ).get("CommonPrefixes", [])
        pending += [p["Prefix"] for p in pages]
    for prefix in sorted(prefixes, key=lambda p: -p.count("/")):
        location.fs.call_s3("delete_object", Bucket=bucket, Key=prefix)
    location.refresh()


def write_text(location: Location, path: str, text: str) -> None:
    with location.fs.open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))


def read_text(location: Location, path: str) -> str:
    with location.fs.open(path, "rb") as handle:
        return handle.read().decode("utf-8")


def write_json(location: Location, path: str, payload: Any, indent: int | None = 2) -> None:
    write_text(location, path, json.dumps(payload, indent=indent, sort_keys=False, default=str))


def read_json(location: Location, path: str) -> Any:
    return json.loads(read_text(location, path))


def open_read(location: Location, path: str, size: int = 0) -> Any:
    """`path` opened for reading. Given its `size` (from the plan or a
    listing), an object store is spared the HEAD request that fsspec's file
    otherwise makes before its first read, for the size and the ETag: one
    of the two requests a small file costs (tests/test_store_requests.py).
    Without the ETag nothing checks that the object did not change while it
    was read; the files the job reads this way are its own and its inputs,
    which it does not expect to change under it."""
    if size <= 0 or location.is_local:
        return location.fs.open(path, "rb")
    try:
        handle = location.fs.open(path, "rb", size=size)
    except TypeError:  # a filesystem whose files take no size
        return location.fs.open(path, "rb")
    if isinstance(handle, AbstractBufferedFile):
        handle.details = {"name": path, "size": size, "type": "file"}
    return handle


def read_parquet(
    location: Location, path: str, columns: list[str] | None = None, size: int = 0
) -> pa.Table:
    """One Parquet file the job wrote, opened as a file: pq.read_table(path,
    filesystem=...) first inspects the path as a dataset, which costs an
    object store more requests per file (benchmarks/scale.py, 300 files: the
    decision files took 290 requests in the write phase that way, 178 so)."""
    with open_read(location, path, size) as handle:
        return pq.ParquetFile(handle).read(columns=columns)


def put_parquet(location: Location, path: str, table: pa.Table) -> tuple[int, int]:
    """Write `table` to `path` as pq.write_table does, one PUT; (rows, bytes)
    of the file, so that no reader asks its footer or a listing for them."""
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    with location.arrow_fs.open_output_stream(path) as out:
        out.write(data)
    return table.num_rows, data.size


def describe_error(exc: BaseException) -> str:
    """One line for a storage failure, with the hint users need most."""
    text = f"{type(exc).__name__}: {exc}".strip()
    lowered = text.lower()
    if any(hint in lowered for hint in UNREACHABLE_HINTS):
        return f"{text} (is the endpoint reachable? check storage.endpoint_url)"
    if isinstance(exc, PermissionError) or any(hint in lowered for hint in CREDENTIAL_HINTS):
        return (
            f"{text} (check the credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            "a profile or storage.options)"
        )
    return text
