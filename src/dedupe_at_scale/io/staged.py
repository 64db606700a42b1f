"""The annotated documents staged under OUT/_staging/annotated/, read back
with every global decision applied: duplicate ids, dedup, the mixture plan."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.io.output import OutputLayout
from dedupe_at_scale.io.reader import ReadUnit, parquet_datasource
from dedupe_at_scale.io.storage import Location
from dedupe_at_scale.steps.dedup.tasks import apply_decisions
from dedupe_at_scale.steps.ids import apply_id_decisions
from dedupe_at_scale.steps.mixture import GroupPlan, apply_plan


class Staged:
    """The annotated rows staged on storage, with the global decisions applied
    whenever they are read: duplicate ids and dedup (one small Parquet file
    per staged file each) and the mixture plan (per group, how many copies of
    which documents)."""

    def __init__(self, layout: OutputLayout, files: list[str], cfg: JobConfig):
        self.layout = layout
        self.files = files
        self.cfg = cfg
        self.id_decisions: list[str] | None = None
        self.decisions: list[str] | None = None
        self.mixture: dict[str, GroupPlan] | None = None

    def read(self, columns: list[str] | None = None) -> ray.data.Dataset:
        # Our own ordered reader: blocks come back in the order they were
        # written, whatever the cluster size.
        transform = None
        if self.id_decisions is not None or self.decisions is not None or self.mixture is not None:
            if columns is not None:
                needed = [col.UID, col.STAGE, col.RULE, col.REASON]
                if self.mixture is not None:
                    needed += [self.cfg.input.id_column, self.cfg.mixture.group_column]
                columns = list(dict.fromkeys([*columns, *needed]))
            transform = functools.partial(
                _apply_global_decisions,
                location=self.layout.location,
                id_decisions=self.id_decisions,
                decisions=self.decisions,
                cfg=self.cfg,
                mixture=self.mixture,
            )
        source = parquet_datasource(self.layout.location, self.files, columns, transform)
        return ray.data.read_datasource(source)

    def document_columns(self) -> list[str]:
        """Everything but the signatures, which only the dedup step reads."""
        heavy = {col.MINHASH, col.EXACT_HI, col.EXACT_LO}
        return [n for n in self.schema_names() if n not in heavy]

    @functools.cached_property
    def _names(self) -> list[str]:
        if not self.files:
            return []
        with self.layout.location.fs.open(self.files[0], "rb") as handle:
            return pq.read_schema(handle).names

    def schema_names(self) -> list[str]:
        """Columns of the staged files (read once: staged files never change)."""
        return list(self._names)


def _apply_global_decisions(
    unit: ReadUnit,
    table: pa.Table,
    location: Location,
    id_decisions: list[str] | None,
    decisions: list[str] | None,
    cfg: JobConfig,
    mixture: dict[str, GroupPlan] | None,
) -> pa.Table:
    if id_decisions is not None:
        repeated = pq.read_table(id_decisions[unit.index], filesystem=location.arrow_fs)
        table = apply_id_decisions(table, repeated)
    if decisions is not None:
        decided = pq.read_table(decisions[unit.index], filesystem=location.arrow_fs)
        table = apply_decisions(table, decided)
    if mixture is not None:
        table = apply_plan(table, cfg.mixture, mixture, cfg.input.id_column)
    return table
