"""The output directory: its layout, the overwrite policy and the commit protocol.

Everything a run writes goes under OUT/_staging/ first:

  _staging/lease.json       held by the run writing this output (io/lease.py)
  _staging/job.json         fingerprint of input listing + config (what may be resumed)
  _staging/annotated/       annotated documents, a file per read unit (job/annotate.py);
                            annotated.done once all are written
  _staging/decisions/       id-check and dedup decisions per staged file
  _staging/publish/{data,rejected,duplicates}/   the finished shards
  _staging/ready.json       written once accounting passed: the files and the manifest

Publishing moves the listed shards to OUT/{data,rejected,duplicates}/, removes
whatever else was there (an older output being overwritten), then writes
OUT/manifest.json: the last write, and the marker of a complete output. Every
step is idempotent, so a run killed at any point is finished by running the
same command again; with the same fingerprint it keeps the read units already
annotated, or resumes after the last completed phase (annotate, or
everything up to publishing).
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import pyarrow.parquet as pq
from pydantic import Field

from dedupe_at_scale.io.fanout import map_files
from dedupe_at_scale.io.lease import LEASE
from dedupe_at_scale.io.lease_store import LOCK
from dedupe_at_scale.io.storage import (
    Location,
    StorageError,
    open_read,
    read_json,
    remove_directory,
    write_json,
)
from dedupe_at_scale.sections import Require, Section, SpecPath

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

MANIFEST = "manifest.json"
STAGING = "_staging"
# What every run publishes; the global steps add their own directories
# (GlobalStep.publishes), which the layout is given.
PUBLISHED = ("data", "rejected", "index", "report.html", "report.json")
IO_THREADS = 16
LeaseCheck = Callable[[], None]  # raises unless this run still holds the output's lease


class OutputConfig(Section):
    # Where the output goes; --output overrides it.
    uri: SpecPath | None = None
    # Target rows per output shard; bytes_per_shard, when set, takes precedence
    # and is converted to rows from the average size of the documents.
    rows_per_shard: int = 100_000
    bytes_per_shard: int | None = None
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"
    # Copy the text of dropped documents into rejected/ (off: ids and reasons only).
    rejected_text: bool = False
    # Where each document came from, in data/ and rejected/: source_file (the
    # input file, relative to the input root) and source_row (stages/lineage.py).
    lineage: bool = True
    # index/: which shards hold each document id, so that `trace` reads only
    # those (job/id_index.py).
    index: bool = True
    # A run holds a lease on its output (_staging/lease.json), renewed every
    # 30 s; another run is refused while it holds it. A lease not renewed for
    # this long (or whose process is gone, on the same host) is taken over.
    lease_timeout_seconds: float = 300.0
    # Nested subsets for data-scaling runs (steps/subsets.py): fractions of
    # the output in the mixture's unit, e.g. [0.25, 0.5, 1.0] writes
    # subsets/25/, subsets/50/, subsets/100/.
    subsets: list[float] = Field(default_factory=list)
    # Held-out splits by a hash of the duplicate cluster (steps/splits.py),
    # e.g. {train: 0.98, validation: 0.01, test: 0.01}: splits/<name>/ and a
    # `split` column.
    splits: dict[str, float] = Field(default_factory=dict)
    # The seed of the subset and split draws.
    seed: int = 0
    # report.html beside the manifest (job/report_html.py).
    report: bool = True

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.rows_per_shard > 0, "output.rows_per_shard", "must be positive")
        if self.bytes_per_shard is not None:
            require(self.bytes_per_shard > 0, "output.bytes_per_shard", "must be positive")
        fractions = self.subsets
        require(
            all(0 < f <= 1 for f in fractions), "output.subsets",
            "must be fractions within (0, 1], such as [0.25, 0.5, 1.0]",
        )  # fmt: skip
        require(len(set(fractions)) == len(fractions), "output.subsets", "repeats a fraction")
        names = {subset_name(f) for f in fractions}
        require(len(names) == len(fractions), "output.subsets", "has two fractions of one percent")
        if self.splits:
            require(
                all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in self.splits), "output.splits",
                "names must be letters, digits, - or _ (they become directories)",
            )  # fmt: skip
            require(all(v > 0 for v in self.splits.values()), "output.splits", "must be > 0")
            total = sum(self.splits.values())
            require(
                abs(total - 1) < 1e-9, "output.splits", f"must sum to 1 (they sum to {total:g})"
            )


def subset_name(fraction: float) -> str:
    """Directory name of a subset: its percentage (25, 12.5)."""
    return f"{100 * fraction:g}"


def _unfenced() -> None:
    pass


# What a re-run of the same job keeps: nothing, the units staged so far, all
# of annotation, or everything but publishing.
Resume = Literal["none", "annotating", "annotated", "publish"]


class OutputExistsError(StorageError):
    """The output already holds a complete run (or foreign files)."""


class OutputLayout:
    def __init__(self, location: Location, step_outputs: Collection[str] = ()):
        """`step_outputs`: the directories the registered global steps may
        publish, whatever the config: an earlier run's are the job's own
        (removed by --overwrite), not foreign."""
        self.location = location
        self.published = (*PUBLISHED, *step_outputs)
        self.manifest = location.join(MANIFEST)
        self.staging_root = location.join(STAGING)
        self.staging = location.join(STAGING, "annotated")
        self.decisions = location.join(STAGING, "decisions")
        self.publish_root = location.join(STAGING, "publish")
        self.job_marker = location.join(STAGING, "job.json")
        self.lease = location.join(STAGING, LEASE)
        self.annotated_marker = location.join(STAGING, "annotated.done")
        self.ready_marker = location.join(STAGING, "ready.json")
        # Where the job writes its shards; publish() moves them to the top.
        self.data = posixpath.join(self.publish_root, "data")
        self.rejected = posixpath.join(self.publish_root, "rejected")

    def published_by_this_run(self) -> bool:
        """Asked of a run that had prepared this output (its _staging/ was
        there): whether it got as far as writing the manifest. An older
        manifest left for --overwrite has a _staging/ without ready.json
        beside it; publishing removes it before writing the new one."""
        fs = self.location.fs
        if not fs.exists(self.manifest):
            return False
        return not fs.exists(self.staging_root) or fs.exists(self.ready_marker)

    def check(self, overwrite: bool) -> None:
        """Refuse a complete output unless `overwrite`, and any directory
        holding files that are not ours."""
        fs, root = self.location.fs, self.location.path
        self.location.refresh()
        if fs.exists(self.manifest) and not overwrite:
            raise OutputExistsError(
                f"{self.location.uri} already holds a complete output ({MANIFEST} exists); "
                "pass --overwrite to replace it"
            )
        if fs.exists(root):
            entries = {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}
            foreign = sorted(entries - {*self.published, STAGING, MANIFEST})
            if foreign:
                raise OutputExistsError(
                    f"{self.location.uri} is not empty and is not a dedupe-at-scale output "
                    f"(found {', '.join(foreign[:5])}); choose an empty or new directory"
                )

    def prepare(self, overwrite: bool, fingerprint: str) -> Resume:
        """Decide what an earlier, interrupted run of the same job left that
        can be kept, and clear the rest. A complete output being overwritten
        stays readable until the new one is published."""
        self.check(overwrite)
        fs = self.location.fs
        resume: Resume = "none"
        if fs.exists(self.job_marker) and read_json(self.location, self.job_marker) == {
            "fingerprint": fingerprint
        }:
            if fs.exists(self.ready_marker):
                return "publish"
            resume = "annotated" if fs.exists(self.annotated_marker) else "annotating"
        if resume == "none":  # all of it but the lease, which this run holds
            if fs.exists(self.staging_root):
                for path in fs.ls(self.staging_root, detail=False):
                    if posixpath.basename(path.rstrip("/")) not in (LEASE, LOCK):
                        self._remove(path)
        self._remove(self.decisions)
        self._remove(self.publish_root)
        if not fs.exists(self.manifest):
            # Shards without a manifest are what a killed publish left.
            for name in self.published:
                self._remove(self.location.join(name))
        fs.makedirs(self.staging_root, exist_ok=True)
        # Made here, at planning, not by the steps: a run taken over while
        # frozen must not bring back a _staging/ the other run published.
        fs.makedirs(self.decisions, exist_ok=True)
        write_json(self.location, self.job_marker, {"fingerprint": fingerprint})
        return resume

    def mark_annotated(self, fence: LeaseCheck = _unfenced) -> None:
        fence()
        write_json(self.location, self.annotated_marker, {"done": True})

    def list_parquet(self, path: str) -> list[str]:
        return sorted(self.parquet_sizes(path))

    def parquet_sizes(self, path: str) -> dict[str, int]:
        return parquet_sizes(self.location, path)

    def describe_shards(self, name: str) -> list[dict[str, Any]]:
        """Path (as it will be after publishing), rows and bytes of each
        finished shard of data/, rejected/ or duplicates/."""
        sizes = self.parquet_sizes(posixpath.join(self.publish_root, name))
        rows = map_files(self.location, list(sizes.items()), _count_rows)  # footers, in tasks
        return [
            {"path": posixpath.relpath(f, self.publish_root), "rows": n, "bytes": sizes[f]}
            for f, n in zip(sizes, rows)
        ]

    def seal(
        self, shards: list[str], manifest: dict[str, Any], fence: LeaseCheck = _unfenced
    ) -> dict[str, Any]:
        """Record that the run finished and passed accounting: from here on a
        re-run only publishes."""
        fence()
        ready = {"shards": sorted(shards), "manifest": manifest}
        write_json(self.location, self.ready_marker, ready)
        return ready

    def read_ready(self) -> dict[str, Any]:
        return read_json(self.location, self.ready_marker)

    def publish(
        self, ready: dict[str, Any], fence: LeaseCheck = _unfenced, release: LeaseCheck = _unfenced
    ) -> None:
        """Move the sealed shards into place, drop everything else under the
        published directories, then write the manifest. Safe to repeat. Each
        step (the old manifest, each directory, the stale files, the new
        manifest) first checks the fence: a run that lost its lease stops.
        `release` gives the lease back once the manifest is written."""
        fs = self.location.fs
        fence()
        if fs.exists(self.manifest):
            fs.rm(self.manifest)
        wanted = set(ready["shards"])
        by_directory: dict[str, list[str]] = {}
        for rel in sorted(wanted):
            by_directory.setdefault(rel.split("/", 1)[0], []).append(rel)

        move = functools.partial(_move_into_place, publish_root=self.publish_root)
        for directory in sorted(by_directory):
            fence()
            map_files(self.location, by_directory[directory], move)  # in tasks
        with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
            fence()
            self.location.refresh()
            stale = [
                path
                for name in self.published
                if fs.exists(self.location.join(name))
                for path in fs.find(self.location.join(name))
                if posixpath.relpath(path, self.location.path) not in wanted
            ]
            list(pool.map(fs.rm, stale))
        missing = [rel for rel in sorted(wanted) if not fs.exists(self.location.join(rel))]
        if missing:
            raise StorageError(f"cannot publish {self.location.uri}: {missing[0]} is missing")
        fence()
        write_json(self.location, self.manifest, ready["manifest"])
        release()
        # Cleanup after the commit point: a leftover staging area is harmless.
        self._remove(self.staging_root)

    def _remove(self, path: str) -> None:
        fs = self.location.fs
        if fs.exists(path):
            fs.rm(path, recursive=True)
        # Stores with a real directory tree (SeaweedFS's filer) keep listing
        # a prefix whose objects are gone until its directory is deleted.
        remove_directory(self.location, path)


def _move_into_place(location: Location, rel: str, publish_root: str) -> None:
    staged, target = posixpath.join(publish_root, rel), location.join(rel)
    if not location.is_local:
        # An object store has no rename: fs.mv is a copy and a delete after
        # existence and directory checks, 7 requests a shard. A copy on the
        # server is 2 (its HEAD and PUT); the staged copy goes with
        # _staging/, removed after the manifest, in 1,000-key deletes.
        try:
            location.fs.cp_file(staged, target)
        except FileNotFoundError:  # already published; publish() checks the target
            pass
        return
    if location.fs.exists(staged):  # otherwise an earlier attempt moved it
        location.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        location.fs.mv(staged, target)


def parquet_sizes(location: Location, path: str) -> dict[str, int]:
    """The Parquet files under `path` with their sizes, from one listing."""
    fs = location.fs
    location.refresh()
    if not fs.exists(path):
        return {}
    found = fs.find(path, detail=True)
    return {p: int(info.get("size") or 0) for p, info in sorted(found.items())
            if p.endswith(".parquet")}  # fmt: skip


def file_counts(location: Location, paths: list[str]) -> dict[str, tuple[int, int]]:
    """Rows and bytes of each file: bytes from one listing of each folder
    they are in, rows from their footers, read in Ray tasks."""
    sizes: dict[str, int] = {}
    for folder in sorted({posixpath.dirname(p) for p in paths}):
        sizes.update(parquet_sizes(location, folder))
    shards = [(p, sizes.get(p, 0)) for p in paths]
    return {p: (n, size) for (p, size), n in zip(shards, map_files(location, shards, _count_rows))}


def _count_rows(location: Location, shard: tuple[str, int]) -> int:
    """Rows of a Parquet file (path, bytes), from its footer; bytes spare
    the store a HEAD (storage.open_read)."""
    path, size = shard
    with open_read(location, path, size) as handle:
        return pq.ParquetFile(handle).metadata.num_rows
