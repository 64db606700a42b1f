"""A finished output, read back by what the manifest lists (`trace`,
`audit`): the shards of every directory by name, and the rows of some shards
that hold given values in a column.

No listing: the manifest names every shard. In each shard only the row
groups whose statistics admit the values are read (the column first, then
the matching rows), so an output ordered by input reads little; a shuffled
one (a mixture's order) still reads every shard's column, never its text."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.output import MANIFEST
from dedupe_at_scale.io.storage import StorageError, read_json, resolve

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import Location, StorageConfig


def find_rows(
    location: Location, paths: list[str], column: str, value: str | Collection[str],
    columns: list[str] | None = None,
) -> list[dict]:  # fmt: skip
    """The rows (their `columns`; None: all) of these shards whose `column`
    equals `value` or one of the values (compared as the column's type: an
    integer id column matches "42")."""
    values = [value] if isinstance(value, str) else sorted(value)

    def one(path: str) -> list[dict]:
        with location.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            if column not in parquet.schema_arrow.names:
                return []
            index = parquet.schema_arrow.names.index(column)
            kind = parquet.schema_arrow.field(column).type
            try:
                wanted = pa.array(values).cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return []  # "abc" is no integer id
            if len(wanted) == 0:
                return []
            low, high = pc.min_max(wanted).values()
            found = []
            for group in range(parquet.metadata.num_row_groups):
                stats = parquet.metadata.row_group(group).column(index).statistics
                if (
                    stats is not None
                    and stats.has_min_max
                    and (high.as_py() < stats.min or low.as_py() > stats.max)
                ):
                    continue
                ids = parquet.read_row_group(group, columns=[column]).column(0)
                hits = pc.indices_nonzero(pc.is_in(ids, value_set=wanted))
                if len(hits):
                    rows = parquet.read_row_group(group, columns=columns).take(hits)
                    found += rows.to_pylist()
            return found

    return [row for rows in in_threads(one, paths) for row in rows]


@dataclass(frozen=True)
class FinishedOutput:
    """A complete output as its manifest describes it: every directory's
    shards, by name (data, rejected, duplicates, subsets/50, ...); what the
    steps read in `trace` (steps/base.FinishedRows)."""

    location: Location
    manifest: dict[str, Any]
    shards: dict[str, list[str]]
    # The shards of a directory that may hold values of a column (an index,
    # job/id_index.py); None from it, or no locate: every shard.
    locate: Callable[[str, str, Collection[str]], list[str] | None] | None = None

    @property
    def id_column(self) -> str:
        return self.manifest["config"]["input"]["id_column"]

    def names(self) -> list[str]:
        return list(self.shards)

    def find(
        self, name: str, column: str, value: str | Collection[str],
        columns: list[str] | None = None,
    ) -> list[dict]:  # fmt: skip
        values = [value] if isinstance(value, str) else value
        paths = self.locate(name, column, values) if self.locate is not None else None
        if paths is None:
            paths = self.shards.get(name, [])
        return find_rows(self.location, paths, column, value, columns)


def open_output(uri: str, storage: StorageConfig | None = None) -> FinishedOutput:
    location = resolve(uri, storage)
    try:
        manifest = read_json(location, location.join(MANIFEST))
    except FileNotFoundError as exc:
        raise StorageError(f"{uri}: no manifest.json, so it is not a complete output") from exc
    shards = {
        name: [location.join(s["path"]) for s in files]
        for name, files in manifest["output"].items()
        if isinstance(files, list)
    }
    return FinishedOutput(location, manifest, shards)
