"""What a read task does: reads a unit's file slices and prepares their rows
for the stages (the unified schema, text as string, each row tagged with its
file and row index, invalid documents raised or quarantined)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.storage import Location, open_read, read_parquet

if TYPE_CHECKING:
    from dedupe_at_scale.io.inputs import InputConfig
    from dedupe_at_scale.io.schema import InputSchema
from dedupe_at_scale.io.inputs import FileSlice, InputError, InputFile, ReadUnit

READ_THREADS = 16  # files of one unit fetched at once


def read_columns(location: Location, unit: ReadUnit, columns: list[str] | None) -> pa.Table:
    (whole,) = unit.slices  # a file the job wrote: one unit each (datasource.file_units)
    return read_parquet(location, whole.file.path, columns, whole.file.size_bytes)


def read_unit(
    location: Location, unit: ReadUnit, cfg: InputConfig, schema: InputSchema | None = None
) -> pa.Table:
    """Read one unit (its file slices, in order) and prepare it for the stages.
    A unit of several small files fetches them at once: on object storage
    each file costs a few requests, and waiting for them one after another
    is what a unit of many files spends its time on."""
    with ThreadPoolExecutor(max_workers=min(len(unit.slices), READ_THREADS) or 1) as pool:
        fetched = [pool.submit(_read_row_groups, location, piece) for piece in unit.slices]
    tables, offset = [], 0
    for piece, fetch in zip(unit.slices, fetched):
        tables.append(_read_slice(piece, fetch.result, location, cfg, unit.index, offset, schema))
        offset += piece.num_rows
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _read_slice(
    piece: FileSlice, fetch: Callable[[], pa.Table], location: Location, cfg: InputConfig,
    unit_index: int, uid_offset: int, schema: InputSchema | None,
) -> pa.Table:  # fmt: skip
    """Prepare one slice; `fetch` gives its rows or raises the read's error."""
    f = piece.file
    try:
        table = fetch()
    except (pa.ArrowException, OSError) as exc:
        message = f"{f.display}: cannot read row groups {list(piece.row_groups)}: {exc}"
        if cfg.on_invalid_file == "error":
            raise InputError(
                f"{message} (set input.on_invalid_file: quarantine to send these documents "
                "to rejected/ instead)"
            ) from exc
        table = _placeholder_rows(location, piece, cfg)
        return prepare_table(table, f, piece.first_row, cfg, unit_index, uid_offset=uid_offset,
                             problem=("unreadable_row_group", message), schema=schema)  # fmt: skip
    return prepare_table(
        table, f, piece.first_row, cfg, unit_index, uid_offset=uid_offset, schema=schema
    )


def _read_row_groups(
    location: Location, piece: FileSlice, columns: list[str] | None = None
) -> pa.Table:
    with open_read(location, piece.file.path, piece.file.size_bytes) as handle:
        # Checksums, where the writer stored them, catch corrupt pages that
        # would otherwise decode into wrong text.
        parquet = pq.ParquetFile(handle, page_checksum_verification=True)
        if not piece.row_groups:
            return parquet.schema_arrow.empty_table()
        return parquet.read_row_groups(list(piece.row_groups), columns=columns)


def _placeholder_rows(location: Location, piece: FileSlice, cfg: InputConfig) -> pa.Table:
    """The slice's rows as nulls in the file's schema, with the ids and other
    columns that can still be read; the text stays null."""
    with location.fs.open(piece.file.path, "rb") as handle:
        schema = pq.ParquetFile(handle).schema_arrow
    n = piece.num_rows
    columns = {field.name: pa.nulls(n, field.type) for field in schema}
    for name in [cfg.id_column] if piece.file.has_id else []:
        try:
            columns[name] = _read_row_groups(location, piece, [name]).column(name)
        except (pa.ArrowException, OSError):
            pass  # the reason names file and row; the id stays null
    return pa.table(columns, schema=schema)


def prepare_table(
    table: pa.Table,
    f: InputFile,
    first_row: int,
    cfg: InputConfig,
    unit_index: int = 0,
    problem: tuple[str, str] | None = None,
    schema: InputSchema | None = None,
    uid_offset: int = 0,
) -> pa.Table:
    """Cast to the unified input schema, tag rows with file, row index and
    uid, make ids and text, flag bad rows (every row, with `problem` =
    (rule, reason))."""
    if schema is not None:
        table = schema.conform(table, f.display, cfg.document_column, dict(f.partitions))
    if cfg.format != "text":
        # The format stage renders each row's text here (stages/format.py).
        table = _set_column(table, col.TEXT, pa.array([""] * table.num_rows, pa.string()))
    n = table.num_rows
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    table = table.append_column(col.FILE, pa.array([f.relpath] * n, pa.string()))
    table = table.append_column(col.ROW, rows)
    # Units follow input order, so uids do too, whatever the unit size; the
    # files of a unit of small files follow each other (uid_offset).
    uids = (np.int64(unit_index) << np.int64(32)) + uid_offset + np.arange(n, dtype=np.int64)
    table = table.append_column(col.UID, pa.array(uids))
    generated = pc.binary_join_element_wise(
        pa.array([f.relpath] * n, pa.string()), pc.cast(rows, pa.string()), "#"
    )
    id_problems: list[str | None] = [None] * n
    if not f.has_id or cfg.id_column not in table.column_names:
        table = _set_column(table, cfg.id_column, generated)
    elif problem is None:
        table, id_problems = _check_ids(table, f, first_row, cfg, generated)
    if problem is not None:
        # The whole unit is rejected: its text (null) is never looked at.
        text = pc.fill_null(table.column(cfg.document_column).cast(pa.string()), "")
        stage = pa.array(["input"] * n, pa.string())
        rule = pa.array([problem[0]] * n, pa.string())
        reason = pa.array([f"{problem[1]} (row {first_row + i})" for i in range(n)], pa.string())
    else:
        text, problems = text_as_string(table.column(cfg.document_column), f, first_row, cfg)
        problems = [p or q for p, q in zip(problems, id_problems)]
        if any(problems):
            stage = pa.array([("input" if p else None) for p in problems], pa.string())
            rule = pa.array(problems, pa.string())
            reasons = [
                f"{p}: row {first_row + i} of {f.display}" if p else None
                for i, p in enumerate(problems)
            ]
            reason = pa.array(reasons, pa.string())
        else:
            stage = rule = reason = pa.nulls(n, pa.string())
    table = _set_column(table, cfg.document_column, text)
    table = table.append_column(col.STAGE, stage)
    table = table.append_column(col.RULE, rule)
    table = table.append_column(col.VALUE, pa.nulls(n, pa.float64()))
    return table.append_column(col.REASON, reason)


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def _check_ids(
    table: pa.Table, f: InputFile, first_row: int, cfg: InputConfig, generated: pa.Array
) -> tuple[pa.Table, list[str | None]]:
    """Null or empty ids: filled with "path#row" (input.id_policy: generate),
    or invalid documents (an error naming file and row, or rows flagged
    null_id for rejected/, as input.on_invalid_document says)."""
    ids = table.column(cfg.id_column).combine_chunks()
    missing = pc.is_null(ids)
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        missing = pc.or_(missing, pc.equal(pc.fill_null(ids, "x"), ""))
    missing_rows = np.flatnonzero(missing.to_numpy(zero_copy_only=False))
    problems: list[str | None] = [None] * len(ids)
    if len(missing_rows) == 0:
        return table, problems
    if cfg.id_policy == "generate":
        filled = pc.if_else(missing, generated.cast(ids.type), ids)
        return _set_column(table, cfg.id_column, filled), problems
    if cfg.on_invalid_document == "error":
        raise InputError(
            f"{f.display}: row {first_row + int(missing_rows[0])} has a null or empty id in "
            f"column '{cfg.id_column}' ({len(missing_rows)} such rows in this block; set "
            "input.id_policy: generate to fill them with '<path>#<row>', or "
            "input.on_invalid_document: quarantine to reject them)"
        )
    for i in missing_rows.tolist():
        problems[i] = "null_id"
    return table, problems


def text_as_string(
    column: pa.ChunkedArray, f: InputFile, first_row: int, cfg: InputConfig
) -> tuple[pa.Array, list[str | None]]:
    """The text column as UTF-8 strings, and per row the problem (or None).

    Null text and invalid UTF-8 either stop the job naming the file and row,
    or are flagged for quarantine, as input.on_invalid_document says."""
    array = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    problems: list[str | None] = [None] * len(array)
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        values = []
        for i, raw in enumerate(array.to_pylist()):
            try:
                values.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError:
                problems[i] = "invalid_utf8"
                values.append("")
        array = pa.array(values, pa.string())
    elif not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    if array.null_count:
        for i in np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False)):
            problems[i] = "null_text"
        array = pc.fill_null(array, "")
    bad = next((i for i, p in enumerate(problems) if p), None)
    if bad is not None and cfg.on_invalid_document == "error":
        what = "null text" if problems[bad] == "null_text" else "text that is not valid UTF-8"
        raise InputError(
            f"{f.display}: row {first_row + bad} has {what} in column '{cfg.text_column}' "
            f"({sum(1 for p in problems if p)} such rows in this block; "
            "set input.on_invalid_document: quarantine to reject them instead)"
        )
    return array, problems
