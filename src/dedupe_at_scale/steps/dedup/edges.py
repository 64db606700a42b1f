"""Edges between documents and where documents live, shared by dedup's
sub-steps: an edge list is an Arrow table of uid pairs (hi > lo), and a
FileIndex maps a uid to its staged file (or group of files) by the files'
increasing uid ranges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.kernels.hashing import MULTIPLIER
from dedupe_at_scale.steps.dedup.lsh import run_starts


class FileIndex:
    """Which staged file (or group of files) holds a uid: files hold
    increasing, disjoint uid ranges (per-file metadata, not per document)."""

    def __init__(self, starts: np.ndarray, files: np.ndarray):
        self.starts = starts
        self.files = files


def file_indexes(range_refs: list) -> tuple[ray.ObjectRef, ray.ObjectRef]:
    """Which staged file, and which group, holds a uid (FileIndex); from each
    group's per-file uid ranges. Put in the object store once: passed by
    value, each of the tasks that take one would carry its own copy (16 bytes
    a staged file), and a hop's arguments would grow with files x groups."""
    ranges = [(lo, hi, g) for g, part in enumerate(ray.get(range_refs)) for lo, hi in part]
    nonempty = [(lo, f, g) for f, (lo, hi, g) in enumerate(ranges) if hi >= lo]
    starts = np.array([lo for lo, _, _ in nonempty], dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    files = np.array([f for _, f, _ in nonempty], dtype=np.int64)[order]
    groups = np.array([g for _, _, g in nonempty], dtype=np.int64)[order]
    return ray.put(FileIndex(starts[order], files)), ray.put(FileIndex(starts[order], groups))


def uid_range(table: pa.Table) -> tuple[int, int]:
    """The first and last uid of a staged file's rows ((0, -1): none)."""
    uids = table.column(col.UID).to_numpy()
    return (int(uids.min()), int(uids.max())) if len(uids) else (0, -1)


def file_of(index: FileIndex, uids: np.ndarray) -> np.ndarray:
    if len(uids) == 0:
        return np.zeros(0, np.int64)
    return index.files[np.searchsorted(index.starts, uids, side="right") - 1]


def ends(pairs: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return pairs.column("hi").to_numpy(), pairs.column("lo").to_numpy()


def pairs_table(hi: np.ndarray, lo: np.ndarray) -> pa.Table:
    return pa.table({"hi": pa.array(hi, pa.int64()), "lo": pa.array(lo, pa.int64())})


def partition_of(x: np.ndarray, partitions: int) -> np.ndarray:
    """Hash partition of integer keys (uids, labels)."""
    with np.errstate(over="ignore"):
        h = x.astype(np.uint64) * MULTIPLIER
        h ^= h >> np.uint64(31)
    return (h % np.uint64(partitions)).astype(np.int64)


def first_of_each(hi: np.ndarray, dest: np.ndarray) -> np.ndarray:
    """True on the first row of each (hi, dest)."""
    order = np.lexsort((dest, hi))  # stable: the first in order is the first row
    carries = np.zeros(len(hi), np.bool_)
    carries[order] = run_starts(hi[order], dest[order])
    return carries
