"""The annotate phase: read each unit, run the stages, stage its rows, and
what a re-run of an interrupted annotation can reuse.

Each read unit's annotated rows go to their own staged file,
OUT/_staging/annotated/annotated-<unit>.parquet, written by the task that
annotated them (a Ray Datasink) so that the file appears whole or not at
all: on local disk through a temporary name and a rename, on object storage as one object (an
upload becomes visible only once complete). A re-run with the same
fingerprint keeps every staged file whose footer reads and whose row count
is its unit's, and annotates only the other units.
"""

from __future__ import annotations

import functools
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import Datasink
from ray.data._internal.execution.interfaces import TaskContext
from ray.data.block import Block, BlockAccessor

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.datasource import input_datasource, read_units
from dedupe_at_scale.io.fanout import map_files
from dedupe_at_scale.job.write import parquet_compression
from dedupe_at_scale.stages.annotate import annotate_batch

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.inputs import ReadUnit
    from dedupe_at_scale.io.lease import Fence
    from dedupe_at_scale.io.output import OutputLayout
    from dedupe_at_scale.io.schema import InputSchema
    from dedupe_at_scale.io.storage import Location

PREFIX = "annotated-"

# A Ray Data pass holds some of the driver's memory per read task until the
# pass ends (its read tasks, all put before it starts, and their outputs'
# refs, in Ray's core worker), besides what its tasks in flight hold
# (job/ray_settings.py; docs/scaling.md). The units therefore go through in
# passes of 16 per CPU of the cluster (enough to keep every core busy), and
# at least 1,000: the driver's peak follows the cluster, not the input's
# files.
MIN_UNITS_PER_PASS = 1_000
UNITS_PER_PASS_PER_CPU = 16


def units_per_pass(cluster_cpus: float) -> int:
    """Read units in one Ray Data pass of the annotate phase."""
    return max(MIN_UNITS_PER_PASS, int(UNITS_PER_PASS_PER_CPU * cluster_cpus))


def staged_name(unit_index: int) -> str:
    return f"{PREFIX}{unit_index:010d}.parquet"


def reusable_units(layout: OutputLayout, units: list[ReadUnit]) -> set[int]:
    """Units an interrupted run staged completely; anything else it left in
    the staging directory (a partial or temporary file) is removed."""
    fs = layout.location.fs
    layout.location.refresh()
    if not fs.exists(layout.staging):
        return set()
    expected = {staged_name(u.index): (u.index, u.num_rows) for u in units}
    check = functools.partial(_check_staged, expected=expected)
    kept = map_files(layout.location, fs.find(layout.staging), check)  # footers, in tasks
    return {index for index in kept if index is not None}


def _check_staged(
    location: Location, path: str, expected: dict[str, tuple[int, int]]
) -> int | None:
    """The unit whose staged file `path` is whole, or None (and the file removed)."""
    unit = expected.get(posixpath.basename(path))
    if unit is not None:
        try:
            with location.fs.open(path, "rb") as handle:
                if pq.ParquetFile(handle).metadata.num_rows == unit[1]:
                    return unit[0]
        except (pa.ArrowException, OSError):
            pass  # unreadable: annotated again
    location.fs.rm(path)
    return None


@dataclass(frozen=True)
class SharedResources:
    """Objects built once on the driver and put in Ray's object store (the
    decontamination index); a worker fetches them once, zero-copy for numpy."""

    refs: tuple[tuple[str, ray.ObjectRef], ...] = ()

    @classmethod
    def put(cls, objects: dict[str, Any]) -> SharedResources:
        return cls(tuple((name, ray.put(value)) for name, value in objects.items()))

    @property
    def token(self) -> str:
        return ",".join(f"{name}={ref.hex()}" for name, ref in self.refs)

    def __call__(self) -> dict[str, Any]:
        return {name: ray.get(ref) for name, ref in self.refs}


def annotate(
    source: Location, layout: OutputLayout, todo: list[ReadUnit], cfg: JobConfig,
    schema: InputSchema | None, resources: SharedResources | None = None,
    fence: Fence | None = None, counter: Any = None,
) -> None:  # fmt: skip
    """Annotate and stage the units `todo` (each with rows; one fused Ray
    task for up to datasource.files_per_task consecutive units, which stages
    each of them), in passes of `units_per_pass` units. With a
    `fence`, each task checks that the run still holds the output's lease
    before it stages a file; a `counter` (job/progress.py's UnitCounter) is
    told of each unit staged."""
    if not todo:
        return
    layout.location.fs.makedirs(layout.staging, exist_ok=True)
    sink = StagingDatasink(layout.location, layout.staging, cfg, fence, counter)
    resources = resources or SharedResources()
    size = units_per_pass(ray.cluster_resources().get("CPU", 1.0))
    for start in range(0, len(todo), size):
        units = todo[start : start + size]
        annotated = read_units(input_datasource(source, units, cfg.input, schema))
        annotated = annotated.map_batches(
            annotate_batch,
            fn_kwargs={"cfg": cfg, "resources": resources},
            batch_format="pyarrow",
            batch_size=None,
        )
        annotated.write_datasink(sink)


class StagingDatasink(Datasink[None]):
    """Writes each unit's annotated rows to the unit's staged file. Ray runs
    read, annotate and this write fused in one task and hands it the task's
    blocks in order: a unit's rows may span several blocks (Ray splits a
    large read) and a block may hold several units (Ray merges what a task
    reads). Each unit is staged once its last row has arrived, so a task
    holds one unit's rows at a time."""

    def __init__(
        self, location: Location, directory: str, cfg: JobConfig, fence: Fence | None = None,
        counter: Any = None,
    ):  # fmt: skip
        self.location, self.directory, self.fence = location, directory, fence
        self.counter = counter
        self.compression = parquet_compression(cfg)
        self.text_column = None if cfg.output.rejected_text else cfg.input.document_column

    def write(self, blocks: Iterable[Block], ctx: TaskContext) -> None:
        unit, pending = None, []  # the unit whose rows are arriving
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            units = pc.shift_right(table.column(col.UID), 32)
            distinct = pc.unique(units).to_pylist()  # in order of appearance
            for next_unit in distinct:
                if next_unit != unit and pending:
                    self._stage(unit, pending)
                    pending = []
                unit = next_unit
                pending.append(table.filter(pc.equal(units, unit)) if len(distinct) > 1 else table)
        if pending:
            self._stage(unit, pending)

    def _stage(self, unit: int, tables: list[pa.Table]) -> None:
        rows = pa.concat_tables(tables)
        if self.text_column is not None:
            rows = without_rejected_text(rows, self.text_column)
        if self.fence is not None:
            self.fence.check()  # a run that was taken over stages nothing more
        self._write(staged_name(unit), rows)
        if self.counter is not None:
            self.counter.add.remote(rows.num_rows)  # the progress bar's; not awaited

    def _write(self, name: str, table: pa.Table) -> None:
        path = posixpath.join(self.directory, name)
        if self.location.is_local:
            temporary = f"{path}.{uuid.uuid4().hex}.tmp"
            pq.write_table(table, temporary, compression=self.compression)
            self.location.fs.mv(temporary, path)
        else:
            fs = self.location.arrow_fs
            pq.write_table(table, path, filesystem=fs, compression=self.compression)


def without_rejected_text(table: pa.Table, text_column: str) -> pa.Table:
    """The rows with the text of those a stage rejected set to null, their
    length kept in REJECTED_CHARS. Nothing after annotation reads a rejected
    row's text unless output.rejected_text: on real text most rows are
    rejected here, and staging their text was most of what the annotate
    pass wrote and the write pass read."""
    rejected = pc.is_valid(table.column(col.STAGE))
    if not pc.any(rejected).as_py():  # nothing to drop: no copy of the text
        return table.append_column(col.REJECTED_CHARS, pa.nulls(table.num_rows, pa.int64()))
    text = table.column(text_column)
    chars = pc.if_else(rejected, pc.utf8_length(text).cast(pa.int64()), None)
    index = table.schema.get_field_index(text_column)
    table = table.set_column(
        index, text_column, pc.if_else(rejected, pa.scalar(None, text.type), text)
    )
    return table.append_column(col.REJECTED_CHARS, chars)
