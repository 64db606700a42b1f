"""The annotated documents staged under OUT/_staging/annotated/, read back
with Ray Data and every global decision applied, in step order."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.datasource import UnitDatasource, file_units, files_per_task, read_units
from dedupe_at_scale.io.fanout import file_task_cpus, in_threads
from dedupe_at_scale.io.storage import read_parquet

if TYPE_CHECKING:
    from dedupe_at_scale.io.inputs import ReadUnit
    from dedupe_at_scale.io.output import OutputLayout
    from dedupe_at_scale.io.storage import Location

# Columns every decision may read or set.
DECISION_COLUMNS = (col.UID, col.STAGE, col.RULE, col.VALUE, col.REASON)


@dataclass(frozen=True)
class DecisionFiles:
    """Where a step wrote its decisions: one small file per staged file
    (None: the step decided nothing there), for staged files `first` on."""

    location: Location
    paths: tuple[str | None, ...]
    # Bytes of each, from a listing, so that a read is one GET with no HEAD
    # (storage.open_read); 0 or none: not known, the store is asked.
    sizes: tuple[int, ...] = ()
    first: int = 0

    def read(self, index: int) -> pa.Table | None:
        at = index - self.first
        path = self.paths[at]
        if path is None:
            return None
        return read_parquet(self.location, path, size=self.sizes[at] if self.sizes else 0)

    def only(self, index: int) -> DecisionFiles:
        """Staged file `index`'s entry alone: what a task reading that file
        carries (with every file's, a pass's task arguments grow with the
        square of the staged files: benchmarks/task_args.py)."""
        at = index - self.first
        sizes = self.sizes[at : at + 1]
        return DecisionFiles(self.location, self.paths[at : at + 1], sizes, first=index)


@dataclass(frozen=True)
class Decision:
    """A global step's decision (steps/base.py) over the rows of one staged
    file: it marks the rows the step rejects (columns.mark_rejected) or adds
    columns to them; it reads DECISION_COLUMNS plus `columns`. Without
    `files`, `apply(file_index, rows)`; with them, `apply(file_index, rows,
    decided)`, `decided` being that file's table (or None). Readers fetch
    every decision's file together with the staged file itself
    (`read_staged`), so that a chain of steps costs one wait on the store,
    not one per step. It must be picklable: it runs in tasks."""

    apply: Callable[..., pa.Table]
    columns: tuple[str, ...] = ()
    files: DecisionFiles | None = None

    def for_file(self, index: int) -> Decision:
        """This decision as a task reading staged file `index` needs it."""
        return self if self.files is None else replace(self, files=self.files.only(index))


def for_file(decisions: Sequence[Decision], index: int) -> tuple[Decision, ...]:
    """Each of `decisions` narrowed to staged file `index` (Decision.for_file)."""
    return tuple(d.for_file(index) for d in decisions)


def columns_to_read(
    columns: Sequence[str], decisions: Sequence[Decision], available: Sequence[str]
) -> list[str]:
    """`columns` and those the decisions read, as far as the files have them."""
    needed = [c for d in decisions for c in (*DECISION_COLUMNS, *d.columns)]
    return [c for c in dict.fromkeys([*columns, *needed]) if c in available]


def read_staged(
    location: Location, path: str, columns: list[str] | None, decisions: Sequence[Decision],
    index: int, size: int = 0,
) -> pa.Table:  # fmt: skip
    """Staged file `index`'s `columns` with every decision applied in step
    order; its decisions' files are fetched at the same time as it. `size`:
    its bytes, where known (storage.open_read)."""
    fetches: list[Callable[[], pa.Table | None]] = [
        functools.partial(read_parquet, location, path, columns, size)
    ]
    fetches += [functools.partial(d.files.read, index) for d in decisions if d.files]
    table, *decided = in_threads(lambda fetch: fetch(), fetches)
    found = iter(decided)
    for decision in decisions:
        if decision.files is None:
            table = decision.apply(index, table)
        else:
            table = decision.apply(index, table, next(found))
    return table


class Staged:
    """The annotated rows staged on storage, and the decisions of the global
    steps in the order the steps ran."""

    def __init__(
        self, layout: OutputLayout, files: list[str],
        counts: dict[str, tuple[int, int]] | None = None,
    ):  # fmt: skip
        self.layout = layout
        self.files = files
        # path -> (rows, bytes): from the plan's units and the listing, so
        # that no pass over the staged files opens one on the driver.
        self.counts = counts
        self.decisions: list[Decision] = []

    def read(
        self,
        columns: list[str] | None = None,
        then: Callable[[ReadUnit, pa.Table], pa.Table] | None = None,
    ) -> ray.data.Dataset:
        """The staged files' rows in order (whatever the cluster size), the
        decisions applied, then `then(unit, rows)` in the same task, for each
        staged file; datasource.files_per_task staged files a read task, whose
        tables Ray Data may merge into larger blocks (data/'s row groups are
        cut by rows, not blocks)."""
        if columns is not None and self.decisions:
            columns = columns_to_read(columns, self.decisions, self.schema_names())
        location = self.layout.location
        units = file_units(location, self.files, self.counts)
        source = StagedSource(location, units, columns, self.decisions, then,
                              counted=self.counts is not None,
                              units_per_task=files_per_task(len(units)))  # fmt: skip
        return read_units(source, num_cpus=self.task_cpus)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Bytes of each staged file, in order, from the listing (0: not known)."""
        return tuple((self.counts or {}).get(p, (0, 0))[1] for p in self.files)

    @property
    def task_cpus(self) -> float:
        """CPUs per read task (io/fanout.file_task_cpus): a fraction for
        many small staged files on an object store, whose tasks wait on it."""
        sizes = [size for _, size in (self.counts or {}).values()]
        return file_task_cpus(self.layout.location, sizes)

    @functools.cached_property
    def schema(self) -> pa.Schema | None:
        """Schema of the staged files (read once: staged files never change)."""
        if not self.files:
            return None
        with self.layout.location.fs.open(self.files[0], "rb") as handle:
            return pq.read_schema(handle)

    def schema_names(self) -> list[str]:
        return list(self.schema.names) if self.schema is not None else []

    def document_columns(self) -> list[str]:
        """Everything but the signatures, which only the dedup step reads."""
        heavy = {col.MINHASH, col.EXACT_HI, col.EXACT_LO}
        return [n for n in self.schema_names() if n not in heavy]


class StagedSource(UnitDatasource):
    """Staged files (one unit each) read with the decisions applied
    (`_read_unit`); each read task carries only its own file's decisions."""

    def __init__(
        self, location: Location, units: list[ReadUnit], columns: list[str] | None,
        decisions: Sequence[Decision], then: Callable[[ReadUnit, pa.Table], pa.Table] | None,
        counted: bool = True, units_per_task: int = 1,
    ):  # fmt: skip
        read = functools.partial(_read_unit, location, columns=columns, decisions=(), then=then)
        super().__init__(location, units, read, counted=counted, units_per_task=units_per_task)
        self.decisions = tuple(decisions)

    def read_for(self, unit: ReadUnit) -> Callable[[ReadUnit], pa.Table]:
        return functools.partial(self.read, decisions=for_file(self.decisions, unit.index))

    def get_name(self) -> str:
        # Ray Data names the read operator after this: "ReadUnit", as before.
        return "Unit"


def _read_unit(
    location: Location,
    unit: ReadUnit,
    columns: list[str] | None,
    decisions: Sequence[Decision],
    then: Callable[[ReadUnit, pa.Table], pa.Table] | None,
) -> pa.Table:
    (whole,) = unit.slices  # one staged file (file_units)
    f = whole.file
    table = read_staged(location, f.path, columns, decisions, unit.index, f.size_bytes)
    return then(unit, table) if then is not None else table
