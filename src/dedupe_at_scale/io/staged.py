"""The annotated documents staged under OUT/_staging/annotated/, read back
with Ray Data and every global decision applied, in step order."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.output import OutputLayout
from dedupe_at_scale.io.reader import ReadUnit, parquet_datasource

# (file index, rows) -> rows: one global step's decision (steps/base.py).
Applier = Callable[[int, pa.Table], pa.Table]
# Columns every decision may read or set.
DECISION_COLUMNS = (col.UID, col.STAGE, col.RULE, col.VALUE, col.REASON)


class Staged:
    """The annotated rows staged on storage, and the decisions of the global
    steps: (applier, columns it reads) in the order the steps ran."""

    def __init__(self, layout: OutputLayout, files: list[str]):
        self.layout = layout
        self.files = files
        self.decisions: list[tuple[Applier, Sequence[str]]] = []

    def read(
        self,
        columns: list[str] | None = None,
        then: Callable[[ReadUnit, pa.Table], pa.Table] | None = None,
    ) -> ray.data.Dataset:
        """One block per staged file, in order (whatever the cluster size),
        the decisions applied, then `then(unit, rows)` in the same task."""
        if columns is not None and self.decisions:
            needed = [c for _, cols in self.decisions for c in (*DECISION_COLUMNS, *cols)]
            columns = [c for c in dict.fromkeys([*columns, *needed]) if c in self.schema_names()]
        transform = functools.partial(_apply, decisions=list(self.decisions), then=then)
        source = parquet_datasource(self.layout.location, self.files, columns, transform)
        return ray.data.read_datasource(source)

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


def _apply(
    unit: ReadUnit,
    table: pa.Table,
    decisions: list[tuple[Applier, Sequence[str]]],
    then: Callable[[ReadUnit, pa.Table], pa.Table] | None,
) -> pa.Table:
    for apply, _ in decisions:
        table = apply(unit.index, table)
    return then(unit, table) if then is not None else table
