"""duplicates/ (and every step output) is written from its decision files
by a Ray Data write that gathers files until a shard's rows: reading each
such bundle in one read task must write exactly what a task per file wrote
(the reference, Ray's own bundling), with far fewer tasks."""

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.datasource import parquet_datasource, read_units, write_bundles
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.job.ray_settings import configure_ray_data
from dedupe_at_scale.job.write import write_parquet

ROWS_PER_SHARD = 7

_rng = random.Random(27)
CASES = {
    "zeros first, between and last": [0, 3, 0, 0, 5, 2, 0],
    "each a shard": [7, 7, 7],
    "one over two shards": [20, 1, 0, 13],
    "no rows at all": [0, 0, 0],
    "one row each": [1] * 15 + [0],
    "just short, then over": [6, 1, 6, 1, 6, 1],
    "random": [_rng.choice([0, 0, 1, 2, 5, 6, 7, 8, 15]) for _ in range(60)],
}


class _Layout:
    def __init__(self, location):
        self.location = location


def _write(tmp: Path, files: list[str], counts: dict, bundled: bool) -> tuple[dict, int]:
    """The files written (name -> bytes), and the pass's read tasks."""
    location = resolve(str(tmp))
    rows_per_write = ROWS_PER_SHARD if bundled else None
    source = parquet_datasource(location, files, counts=counts, rows_per_write=rows_per_write)
    out = tmp / ("bundled" if bundled else "per-file")
    cfg = config_from_dict({})
    write_parquet(read_units(source), str(out), _Layout(location), cfg, ROWS_PER_SHARD, "part")
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}, source.read_tasks


@pytest.mark.parametrize("rows", list(CASES.values()), ids=list(CASES))
def test_bundled_read_tasks_write_the_same_files(ray_cluster, tmp_path, rows):
    configure_ray_data(ray_cluster.data.DataContext.get_current())
    files, counts, first = [], {}, 0
    for i, n in enumerate(rows):
        path = str(tmp_path / f"decisions-{i:03d}.parquet")
        ids = [f"doc-{first + r}" for r in range(n)]
        table = pa.table({"id": pa.array(ids, pa.string()), "n": pa.array(range(n), pa.int64())})
        pq.write_table(table, path)
        files.append(path)
        counts[path] = (n, Path(path).stat().st_size)
        first += n
    per_file, file_tasks = _write(tmp_path, files, counts, bundled=False)
    bundled, bundle_tasks = _write(tmp_path, files, counts, bundled=True)
    assert bundled == per_file
    assert file_tasks == len(rows)
    assert bundle_tasks == len(write_bundles(rows, ROWS_PER_SHARD))
    # A task for each shard's rows, and one for what is left.
    assert bundle_tasks <= sum(rows) // ROWS_PER_SHARD + 1
    if sum(rows):
        assert per_file, "the reference wrote nothing"
    shards = pq.read_table([str(tmp_path / "bundled" / n) for n in bundled]) if bundled else None
    assert (shards.num_rows if shards is not None else 0) == sum(rows)


def test_write_bundles_cut_where_a_bundle_reaches_its_rows():
    assert write_bundles([], 7) == []
    assert write_bundles([0, 0], 7) == [2]
    assert write_bundles([0, 3, 4, 0, 9, 1], 7) == [3, 2, 1]
    assert write_bundles([7, 0, 7], 7) == [1, 2]
    assert write_bundles([1] * 15, 7) == [7, 7, 1]
    assert sum(write_bundles(CASES["random"], 7)) == len(CASES["random"])
