"""Pieces shared by the global steps' Ray tasks (dedup.py, idcheck.py):
submitting a task with several returns, splitting a table into hash
partitions, gathering partitions, and reading the kept rows of a staged file."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.storage import Location


def call(fn, n: int, *args) -> list:
    """Submit a remote function with `n` returns; always a list of refs."""
    refs = fn.options(num_returns=n).remote(*args)
    return [refs] if n == 1 else list(refs)


def as_returns(pieces: list) -> Any:
    """A task's pieces as its returns (Ray wants one value when n is 1)."""
    return pieces[0] if len(pieces) == 1 else tuple(pieces)


def split(table: pa.Table, dest: np.ndarray, n: int) -> list[pa.Table]:
    """Rows of `table` split by destination index, each piece in row order."""
    if n == 1:
        return [table]
    order = np.argsort(dest, kind="stable")
    bounds = np.searchsorted(dest[order], np.arange(n + 1))
    sorted_table = table.take(pa.array(order))
    return [sorted_table.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(n)]


def gather(pieces: list) -> pa.Table:
    """Concatenate pieces passed as a list of ObjectRefs (Ray resolves only
    top-level arguments)."""
    return pa.concat_tables(ray.get(list(pieces)))


def read_staged(location: Location, path: str, columns: list[str]) -> pa.Table:
    with location.fs.open(path, "rb") as handle:
        return pq.ParquetFile(handle).read(columns=[col.UID, col.STAGE, *columns])


def only_kept(table: pa.Table) -> pa.Table:
    return col.kept_rows(table).drop_columns([col.STAGE])


def read_kept(location: Location, path: str, columns: list[str]) -> pa.Table:
    return only_kept(read_staged(location, path, columns))
