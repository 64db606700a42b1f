"""The hop of boilerplate and the per-domain caps (steps/partition_rows.py):
staged files sent in groups, through objects or mailboxes, give each
partition's reducer the rows the plain loop gives it (every file's rows
whose key falls in the partition, in file order), on a real local Ray."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import ray
from ray import cloudpickle

from dedupe_at_scale.steps.base import group_count, group_files
from dedupe_at_scale.steps.partition_rows import reduce_by_partition

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]
# The rows and reduce functions go to the tasks as arguments: by value, as
# Ray's workers cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _rows(file: int, salt: int) -> tuple[pa.Table, np.ndarray]:
    """A stand-in staged file's rows: 0 to 30 of them, random keys."""
    rng = np.random.default_rng(file * 1000 + salt)
    n = int(rng.integers(0, 31))
    keys = rng.integers(0, 2**63, n, dtype=np.uint64)
    return pa.table({"file": np.full(n, file), "row": np.arange(n), "key": keys}), keys


def _identity(table: pa.Table, marker: str) -> pa.Table:
    return table.append_column("marker", pa.array([marker] * table.num_rows, pa.string()))


def _plain(files: list[int], parts: int, salt: int) -> list[pa.Table]:
    tables = [_rows(f, salt)[0] for f in files]
    table = pa.concat_tables(tables)
    part = (table["key"].to_numpy() % np.uint64(parts)).astype(np.int64)
    return [_identity(table.filter(pa.array(part == p)), "x") for p in range(parts)]


@pytest.mark.parametrize("mode", ["objects", "mailboxes"])
@pytest.mark.parametrize(("files", "parts"), [(1, 1), (7, 3), (40, 2)])
def test_each_partition_gets_the_plain_loops_rows_in_file_order(ray_cluster, mode, files, parts):
    view = SimpleNamespace(
        files=list(range(files)), partitions=parts,
        cfg=SimpleNamespace(dedup=SimpleNamespace(exchange=mode)),
    )  # fmt: skip
    got = ray.get(reduce_by_partition(view, "test", _rows, (5,), _identity, ("x",)))
    assert len(got) == parts
    for mine, plain in zip(got, _plain(list(range(files)), parts, 5)):
        assert mine.equals(plain)


def test_forty_files_make_eight_groups_for_two_partitions():
    # The senders reduce_by_partition starts: 8 for 40 files and 2
    # partitions (16 pieces), where one sender a file made 80 objects.
    groups = group_files(list(range(40)), group_count(2))
    assert len(groups) == 8
    assert [f for g in groups for f in g.files] == list(range(40))
