"""Read units as a Ray Data datasource: one read task per unit, in order,
so the units, not the cluster, decide the blocks; for the input shards and
for the files the job wrote itself (staging)."""

from __future__ import annotations

import functools
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


class UnitDatasource(Datasource):
    """One read task per ReadUnit, in order: the units, not the cluster size,
    decide block boundaries, so output is the same on any cluster."""

    def __init__(
        self, location: Location, units: list[ReadUnit], read: Callable[[ReadUnit], pa.Table],
        counted: bool = True,
    ):  # fmt: skip
        super().__init__()
        self.location = location
        self.units = units
        self.read = read
        self.counted = counted  # False: the units' rows and bytes are not known

    def read_for(self, unit: ReadUnit) -> Callable[[ReadUnit], pa.Table]:
        """What `unit`'s read task runs (and so carries to its worker)."""
        return self.read

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(_unit_bytes(u) for u in self.units) if self.counted else None

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
        tasks = []
        for unit in self.units:
            meta = BlockMetadata(
                num_rows=unit.num_rows if self.counted else None,
                size_bytes=_unit_bytes(unit) if self.counted else None,
                exec_stats=None,
                input_files=[s.file.display for s in unit.slices],
            )
            tasks.append(ReadTask(_read_fn(self.read_for(unit), unit), meta))
        return tasks


def read_units(source: UnitDatasource, **ray_remote_args) -> ray.data.Dataset:
    """The source as a Dataset of one block per unit. Ray Data would
    otherwise split each read into slices to reach its own block count,
    max(200, 2 x the cluster's CPUs): each slice costs a copy when it is
    serialized, and data/'s shards, written from whole blocks, would depend
    on the cluster's size."""
    return ray.data.read_datasource(
        source, override_num_blocks=len(source.units), **ray_remote_args
    )


def _unit_bytes(unit: ReadUnit) -> int:
    return sum(s.file.size_bytes * s.num_rows // max(s.file.num_rows, 1) for s in unit.slices)


def _read_fn(
    read: Callable[[ReadUnit], pa.Table], unit: ReadUnit
) -> Callable[[], Iterator[pa.Table]]:
    # A named function, not a partial: Ray Data reads the read function's __name__.
    def read_unit_block() -> Iterator[pa.Table]:
        yield read(unit)

    return read_unit_block


def input_datasource(
    location: Location, units: list[ReadUnit], cfg: InputConfig, schema: InputSchema | None = None
) -> UnitDatasource:
    """Input shards, tagged with file and row, cast to the unified schema and
    checked row by row."""
    shared = schema.for_tasks() if schema is not None else None
    read = functools.partial(read_unit, location, cfg=cfg, schema=shared)
    return UnitDatasource(location, units, read)


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
) -> UnitDatasource:
    """Files the job wrote itself, one task per file, in the given order.
    The driver opens none of them: `counts` (path -> rows, bytes), where the
    caller knows them from the plan and the listing, become the blocks'
    metadata; without them Ray Data learns the counts from the blocks."""
    read = functools.partial(read_columns, location, columns=columns)
    units = file_units(location, paths, counts)
    return UnitDatasource(location, units, read, counted=counts is not None)
