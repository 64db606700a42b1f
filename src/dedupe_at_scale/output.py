"""The output directory: its layout, the overwrite policy and the final commit."""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.parquet as pq

from .storage import Location, StorageError, write_json

MANIFEST = "manifest.json"
OWN_ENTRIES = {"data", "rejected", "duplicates", "_staging", MANIFEST}


class OutputExistsError(StorageError):
    """The output already holds a complete run (or foreign files)."""


class OutputLayout:
    def __init__(self, location: Location):
        self.location = location
        self.data = location.join("data")
        self.rejected = location.join("rejected")
        self.duplicates = location.join("duplicates")
        self.staging = location.join("_staging", "annotated")
        self.manifest = location.join(MANIFEST)

    def check(self, overwrite: bool) -> None:
        """Refuse a complete output unless `overwrite`, and any directory
        holding files that are not ours."""
        fs, root = self.location.fs, self.location.path
        if fs.exists(self.manifest) and not overwrite:
            raise OutputExistsError(
                f"{self.location.uri} already holds a complete output ({MANIFEST} exists); "
                "pass --overwrite to replace it"
            )
        if fs.exists(root):
            entries = {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}
            foreign = sorted(entries - OWN_ENTRIES)
            if foreign:
                raise OutputExistsError(
                    f"{self.location.uri} is not empty and is not a dedupe-at-scale output "
                    f"(found {', '.join(foreign[:5])}); choose an empty or new directory"
                )

    def prepare(self, overwrite: bool) -> None:
        """Clear what a previous run left. The old manifest goes first, so an
        interrupted overwrite never leaves a manifest beside partial data."""
        self.check(overwrite)
        fs, root = self.location.fs, self.location.path
        if fs.exists(self.manifest):
            fs.rm(self.manifest)
        for name in OWN_ENTRIES - {MANIFEST}:
            path = self.location.join(name)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        fs.makedirs(root, exist_ok=True)

    def list_parquet(self, path: str) -> list[str]:
        fs = self.location.fs
        if not fs.exists(path):
            return []
        return sorted(p for p in fs.find(path) if p.endswith(".parquet"))

    def describe_shards(self, path: str) -> list[dict[str, Any]]:
        files = self.list_parquet(path)

        def describe(file: str) -> dict[str, Any]:
            return {
                "path": posixpath.relpath(file, self.location.path),
                "rows": count_rows(self.location, file),
                "bytes": self.location.fs.size(file),
            }

        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(describe, files))

    def commit(self, manifest: dict[str, Any]) -> None:
        """Drop the staging area, then write the manifest: the last write."""
        staging_root = self.location.join("_staging")
        if self.location.fs.exists(staging_root):
            self.location.fs.rm(staging_root, recursive=True)
        write_json(self.location, self.manifest, manifest)


def count_rows(location: Location, path: str) -> int:
    with location.fs.open(path, "rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows
