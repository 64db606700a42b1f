"""Rejected rows: their schema, and the rows of whole files quarantined at
planning time (input.on_invalid_file: quarantine).

A quarantined file never reaches Ray: its documents cannot be annotated. The
driver writes one rejected row per document (its id when the id column can
still be read, otherwise "<file>#<row>"), or a single row named after the
file when not even its row count is known.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedupe_at_scale.io.inputs import UNCOUNTABLE, InputFile

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.storage import Location

QUARANTINE_SHARD = "quarantine-00000.parquet"


def rejected_schema(cfg: JobConfig) -> pa.Schema:
    fields = [
        ("id", pa.string()),
        ("stage", pa.string()),
        ("rule", pa.string()),
        ("value", pa.float64()),
        ("reason", pa.string()),
    ]
    if cfg.output.lineage:  # as stages/lineage.py names them in data/
        fields += [("source_file", pa.string()), ("source_row", pa.int64())]
    return pa.schema(fields + ([("text", pa.string())] if cfg.output.rejected_text else []))


def rejected_table(
    cfg: JobConfig, ids: pa.Array, stage: pa.Array, rule: pa.Array, value: pa.Array,
    reason: pa.Array, text: pa.Array | None = None,
    source: tuple[pa.Array, pa.Array] | None = None,
) -> pa.Table:  # fmt: skip
    """Rows of rejected/; ids are strings whatever their input type;
    `source`: each row's input file and row (output.lineage)."""
    columns = [pc.cast(ids, pa.string()), stage, rule, value, reason]
    if cfg.output.lineage:
        file, row = source if source is not None else (None, None)
        columns.append(file if file is not None else pa.nulls(len(ids), pa.string()))
        columns.append(
            pc.cast(row, pa.int64()) if row is not None else pa.nulls(len(ids), pa.int64())
        )
    if cfg.output.rejected_text:
        columns.append(text if text is not None else pa.nulls(len(ids), pa.string()))
    return pa.Table.from_arrays(columns, schema=rejected_schema(cfg))


def write_quarantined_files(
    source: Location, files: list[InputFile], output: Location, rejected_dir: str, cfg: JobConfig
) -> str | None:
    """One shard in rejected/ for every quarantined file; its path, or None."""
    quarantined = [f for f in files if f.problem is not None]
    if not quarantined:
        return None
    output.fs.makedirs(rejected_dir, exist_ok=True)
    path = posixpath.join(rejected_dir, QUARANTINE_SHARD)
    with pq.ParquetWriter(path, rejected_schema(cfg), filesystem=output.arrow_fs) as writer:
        for f in quarantined:
            for table in _file_rows(source, f, cfg):
                writer.write_table(table)
    return path


def _file_rows(source: Location, f: InputFile, cfg: JobConfig) -> Iterator[pa.Table]:
    rule, reason = f.problem or ("", "")
    if rule in UNCOUNTABLE:
        yield _rows(cfg, pa.array([f.relpath]), rule, reason, (f.relpath, None))
        return
    first = 0
    for group, n in enumerate(f.row_group_rows):
        yield _rows(cfg, _ids(source, f, group, first, n, cfg), rule, reason, (f.relpath, first))
        first += n


def _ids(
    source: Location, f: InputFile, group: int, first: int, n: int, cfg: JobConfig
) -> pa.Array:
    if f.has_id:
        try:
            with source.fs.open(f.path, "rb") as handle:
                ids = pq.ParquetFile(handle).read_row_group(group, columns=[cfg.input.id_column])
            return ids.column(0).combine_chunks()
        except (pa.ArrowException, OSError):
            pass  # fall back to positions
    return pa.array([f"{f.relpath}#{row}" for row in range(first, first + n)], pa.string())


def _rows(
    cfg: JobConfig, ids: pa.Array, rule: str, reason: str, source: tuple[str, int | None]
) -> pa.Table:
    """`source`: the file, and its first row here (None: rows unknown)."""
    n = len(ids)
    file, first = source
    rows = (
        pa.nulls(n, pa.int64()) if first is None else pa.array(range(first, first + n), pa.int64())
    )
    return rejected_table(
        cfg, ids, pa.array(["input"] * n, pa.string()), pa.array([rule] * n, pa.string()),
        pa.nulls(n, pa.float64()), pa.array([reason] * n, pa.string()),
        source=(pa.array([file] * n, pa.string()), rows),
    )  # fmt: skip
