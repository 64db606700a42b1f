"""The one place that turns URIs into filesystems and paths.

Local paths and every fsspec URL go through the same code: fsspec for listing
and globbing, a pyarrow filesystem (native for local disk, fsspec-wrapped
otherwise) for reading and writing Parquet.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem

GLOB_CHARS = ("*", "?", "[")


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


def resolve(uri: str, storage_options: dict[str, Any] | None = None) -> Location:
    try:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc
    return Location(uri=uri, fs=fs, path=path.rstrip("/") or path)


def list_parquet_files(location: Location) -> tuple[list[str], str]:
    """Input Parquet files under a directory or matching a glob, sorted, and
    the root directory that generated ids are made relative to."""
    fs, path = location.fs, location.path
    try:
        if any(ch in path for ch in GLOB_CHARS):
            root = path.split("*")[0].split("?")[0].split("[")[0]
            root = root if root.endswith("/") else posixpath.dirname(root)
            files = [p for p in fs.glob(path) if fs.isfile(p)]
        elif fs.isdir(path):
            root = path
            files = [p for p in fs.find(path) if p.endswith((".parquet", ".pq"))]
        elif fs.isfile(path):
            root, files = posixpath.dirname(path), [path]
        else:
            raise StorageError(f"input not found: {location.uri}")
    except (OSError, PermissionError) as exc:
        raise StorageError(f"cannot list input {location.uri}: {exc}") from exc
    if not files:
        raise StorageError(f"no Parquet files (*.parquet, *.pq) found at {location.uri}")
    return sorted(files), root.rstrip("/")


def write_json(location: Location, path: str, payload: Any) -> None:
    data = json.dumps(payload, indent=2, sort_keys=False, default=str).encode("utf-8")
    with location.fs.open(path, "wb") as handle:
        handle.write(data)


def read_json(location: Location, path: str) -> Any:
    with location.fs.open(path, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))
