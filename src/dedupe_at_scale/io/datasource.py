"""Read units as a Ray Data datasource, in order: one read task per unit, or
per `units_per_task` consecutive units, so the units, not the cluster,
decide the blocks; for the input shards and for the files the job wrote
itself (staging)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

if TYPE_CHECKING:
    from dedupe_at_scale.io.inputs import InputConfig
    from dedupe_at_scale.io.schema import InputSchema
    from dedupe_at_scale.io.storage import (
        Location,
    )
from dedupe_at_scale.io.inputs import FileSlice, InputFile, ReadUnit
from dedupe_at_scale.io.rows import read_columns, read_unit

# Ray Data's executor spends about 10 ms of the driver's CPU on each read
# task of a pass, and little more for each further block the task yields
# (benchmarks/pass_tasks.py): at a task a file, annotate and the write pass
# over a billion documents (50,000 units) kept the driver busy for minutes.
# Those passes read up to MAX_FILES_PER_TASK consecutive files a task,
# keeping at least MIN_READ_TASKS tasks for the cores.
MAX_FILES_PER_TASK = 16
MIN_READ_TASKS = 64


def files_per_task(files: int) -> int:
    """Consecutive files a read task of a pass over `files` files reads."""
    return max(1, min(MAX_FILES_PER_TASK, files // MIN_READ_TASKS))


def read_task_count(files: int, per_task: int) -> int:
    """Read tasks of a pass over `files` files, `per_task` a task."""
    return -(-files // per_task)


class UnitDatasource(Datasource):
    """The ReadUnits in order, `units_per_task` consecutive units a read
    task, each read into a table of its own (which Ray Data may merge into
    blocks of up to its target size): the units, not the cluster size,
    decide the blocks, so output is the same on any cluster."""

    def __init__(
        self, location: Location, units: list[ReadUnit], read: Callable[[ReadUnit], pa.Table],
        counted: bool = True, units_per_task: int = 1, task_sizes: list[int] | None = None,
    ):  # fmt: skip
        super().__init__()
        self.location = location
        self.units = units
        self.read = read
        self.counted = counted  # False: the units' rows and bytes are not known
        self.units_per_task = units_per_task
        # The consecutive units each task reads, where not units_per_task.
        self.task_sizes = task_sizes

    def read_for(self, unit: ReadUnit) -> Callable[[ReadUnit], pa.Table]:
        """What `unit`'s read task runs (and so carries to its worker)."""
        return self.read

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(_unit_bytes(u) for u in self.units) if self.counted else None

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
        tasks = []
        for at, size in self._task_spans():
            units = self.units[at : at + size]
            meta = BlockMetadata(
                num_rows=sum(u.num_rows for u in units) if self.counted else None,
                size_bytes=sum(_unit_bytes(u) for u in units) if self.counted else None,
                exec_stats=None,
                input_files=[s.file.display for u in units for s in u.slices],
            )
            tasks.append(ReadTask(_read_fn([(self.read_for(u), u) for u in units]), meta))
        return tasks

    @property
    def read_tasks(self) -> int:
        if self.task_sizes is not None:
            return len(self.task_sizes)
        return read_task_count(len(self.units), self.units_per_task)

    def _task_spans(self) -> list[tuple[int, int]]:
        """(first unit, units) of each read task."""
        if self.task_sizes is None:
            step = self.units_per_task
            return [(at, step) for at in range(0, len(self.units), step)]
        starts = itertools.accumulate(self.task_sizes, initial=0)
        return list(zip(starts, self.task_sizes))


def read_units(source: UnitDatasource, **ray_remote_args) -> ray.data.Dataset:
    """The source as a Dataset read by the source's own read tasks. Ray Data
    would otherwise split each read into slices to reach its own block count,
    max(200, 2 x the cluster's CPUs): each slice costs a copy when it is
    serialized, and data/'s shards, written from whole blocks, would depend
    on the cluster's size."""
    return ray.data.read_datasource(
        source, override_num_blocks=source.read_tasks, **ray_remote_args
    )


def _unit_bytes(unit: ReadUnit) -> int:
    return sum(s.file.size_bytes * s.num_rows // max(s.file.num_rows, 1) for s in unit.slices)


def _read_fn(
    reads: list[tuple[Callable[[ReadUnit], pa.Table], ReadUnit]],
) -> Callable[[], Iterator[pa.Table]]:
    # A named function, not a partial: Ray Data reads the read function's __name__.
    def read_unit_block() -> Iterator[pa.Table]:
        for read, unit in reads:
            yield read(unit)

    return read_unit_block


def input_datasource(
    location: Location, units: list[ReadUnit], cfg: InputConfig, schema: InputSchema | None = None
) -> UnitDatasource:
    """Input shards, tagged with file and row, cast to the unified schema and
    checked row by row; files_per_task units a read task."""
    shared = schema.for_tasks() if schema is not None else None
    read = functools.partial(read_unit, location, cfg=cfg, schema=shared)
    return UnitDatasource(location, units, read, units_per_task=files_per_task(len(units)))


def file_units(
    location: Location, paths: list[str], counts: dict[str, tuple[int, int]] | None = None
) -> list[ReadUnit]:
    """One unit per file the job wrote, in the given order (unit.index = the
    file's position), with its rows and bytes where `counts` knows them."""
    units = []
    for index, path in enumerate(paths):
        rows, size = (counts or {}).get(path, (0, 0))
        f = InputFile(path, location.display(path), path, rows, size, (), True)
        units.append(ReadUnit((FileSlice(f, (), 0, rows),), index))
    return units


def parquet_datasource(
    location: Location,
    paths: list[str],
    columns: list[str] | None = None,
    counts: dict[str, tuple[int, int]] | None = None,
    rows_per_write: int | None = None,
) -> UnitDatasource:
    """Files the job wrote itself, in the given order, one task per file or,
    with `counts` and `rows_per_write`, per write_bundles group. The driver
    opens none of them: `counts` (path -> rows, bytes), where the caller
    knows them from the plan and the listing, become the blocks' metadata;
    without them Ray Data learns the counts from the blocks."""
    read = functools.partial(read_columns, location, columns=columns)
    units = file_units(location, paths, counts)
    sizes = None
    if counts is not None and rows_per_write is not None:
        sizes = write_bundles([counts[p][0] for p in paths], rows_per_write)
    return UnitDatasource(location, units, read, counted=counts is not None, task_sizes=sizes)


def write_bundles(rows: list[int], min_rows: int) -> list[int]:
    """The consecutive files (of `rows` rows each) that a Ray Data write with
    `min_rows_per_file=min_rows` hands to each of its write tasks: files are
    gathered until they hold min_rows rows (RebundleQueue with EstimateSize,
    ray 2.60), a file without rows joins the bundle being gathered. Reading
    each bundle in one task makes the same write tasks, so the same files,
    with a task per bundle instead of per file (10 ms of the driver's CPU
    each)."""
    sizes: list[int] = []
    files = gathered = 0
    for n in rows:
        files += 1
        gathered += n
        if n > 0 and gathered >= min_rows:
            sizes.append(files)
            files = gathered = 0
    if files:
        sizes.append(files)
    return sizes
