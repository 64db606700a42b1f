"""Finding, checking and reading the input Parquet shards.

Every file's footer is checked on the driver before any work starts, so a
missing column, a wrong type or a file that is not Parquet fails fast with the
file's name. Reading is a Ray Data datasource whose tasks are cut at row-group
borders (independent of the cluster size, so output does not depend on it) and
which tags every row with its file and row index.
"""

from __future__ import annotations

import functools
import posixpath
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from dedupe_at_scale import columns as col
from dedupe_at_scale import formats
from dedupe_at_scale.io.fanout import map_files
from dedupe_at_scale.io.storage import (
    InputListing,
    Location,
    StorageError,
    list_input_files,
    read_parquet,
)

if TYPE_CHECKING:
    from dedupe_at_scale.config import InputConfig
    from dedupe_at_scale.io.schema import InputSchema


class InputError(ValueError):
    """Bad input data; the message names the file (and row) and the problem."""


class FileProblem(InputError):
    """A whole file cannot be used. `rule` names the problem in rejected/;
    `num_rows` is None when not even the footer could be read."""

    def __init__(self, message: str, rule: str, num_rows: int | None = None):
        super().__init__(message)
        self.rule = rule
        self.num_rows = num_rows


@dataclass(frozen=True)
class InputFile:
    path: str  # on the filesystem
    display: str  # as shown to the user
    relpath: str  # relative to the input root; used for generated ids
    num_rows: int
    size_bytes: int
    row_group_rows: tuple[int, ...]
    has_id: bool
    # Set when input.on_invalid_file quarantines the file: (rule, reason).
    problem: tuple[str, str] | None = None
    schema: pa.Schema | None = field(default=None, compare=False)  # from the footer
    # Hive key=value directories above the file: columns its rows get.
    partitions: tuple[tuple[str, str | None], ...] = ()

    @property
    def entries(self) -> int:
        """What this file adds to the input count: its rows, or 1 for a file
        whose rows cannot be counted (it is one rejected entry then)."""
        if self.problem is not None and self.problem[0] in UNCOUNTABLE:
            return 1
        return self.num_rows


@dataclass(frozen=True)
class FileSlice:
    """Whole row groups of one file."""

    file: InputFile
    row_groups: tuple[int, ...]
    first_row: int
    num_rows: int


@dataclass(frozen=True)
class ReadUnit:
    """What one read task reads, into one block and one staged file: a slice
    of a file, or several small files whole."""

    slices: tuple[FileSlice, ...]
    index: int = 0  # position among all units: the high half of document uids

    @property
    def num_rows(self) -> int:
        return sum(s.num_rows for s in self.slices)


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
FILES_PER_UNIT = 256  # small files one read task opens, at most
# Inputs with more files have their footers read in Ray tasks when Ray is up
# (the CLI starts it before planning then); fewer are read here, so that a
# bad file in a small input is found before Ray starts.
FOOTERS_IN_TASKS = 256
READ_THREADS = 16  # files of one unit fetched at once
# Problems that leave a file's row count unknown.
UNCOUNTABLE = ("empty_file", "not_parquet", "unreadable_file")
TEXT_TYPES = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.string_view())


def discover_inputs(location: Location, cfg: InputConfig) -> list[InputFile]:
    """List and check every input file's footer."""
    return inspect_files(location, list_input_files(location), cfg)


def inspect_files(location: Location, listing: InputListing, cfg: InputConfig) -> list[InputFile]:
    """Check every listed file's footer: in Ray tasks past FOOTERS_IN_TASKS
    files when Ray is up (the driver then makes no request per file), else
    in threads here."""
    inspect = functools.partial(inspect_file, root=listing.root, cfg=cfg)
    in_tasks = len(listing.files) > FOOTERS_IN_TASKS
    return map_files(location, listing.files, inspect, in_tasks=in_tasks)


def hive_partitions(relpath: str, cfg: InputConfig) -> tuple[tuple[str, str | None], ...]:
    """The key=value directories of a file's path below the input root, as
    Hive, Spark and Ray Data write them (values URL-decoded; Hive's default
    partition is null). The text column is never taken from a path."""
    if cfg.partitioning == "none":
        return ()
    values: dict[str, str | None] = {}
    for part in relpath.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key and key != cfg.text_column:
            value = urllib.parse.unquote(value)
            values[urllib.parse.unquote(key)] = None if value == HIVE_NULL else value
    return tuple(values.items())


def inspect_file(location: Location, path: str, root: str, cfg: InputConfig) -> InputFile:
    """Footer and schema of one file; a problem is an error or, with
    input.on_invalid_file: quarantine, recorded on the file."""
    display = location.display(path)
    relpath = posixpath.relpath(path, root) if root else path
    partitions = hive_partitions(relpath, cfg)
    size, has_id = 0, False
    try:
        try:
            size = location.fs.size(path)
        except (OSError, PermissionError) as exc:
            raise FileProblem(f"{display}: cannot be read: {exc}", "unreadable_file") from exc
        if size == 0:
            raise FileProblem(
                f"{display}: file is empty (0 bytes), not a Parquet file", "empty_file"
            )
        try:
            with location.fs.open(path, "rb") as handle:
                meta = pq.ParquetFile(handle).metadata
                schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise FileProblem(
                f"{display}: not a readable Parquet file (truncated or not Parquet): {exc}",
                "not_parquet",
            ) from exc
        rows = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        has_id = cfg.id_column in schema.names
        if has_id and cfg.id_policy == "require" and cfg.on_invalid_document == "error":
            check_id_statistics(meta, cfg.id_column, display)
        if cfg.format == "text":
            check_text_column(schema, cfg.text_column, display, meta.num_rows)
        else:
            problem = formats.schema_problem(schema, cfg)
            if problem is not None:
                raise FileProblem(f"{display}: {problem[1]}", problem[0], meta.num_rows)
    except FileProblem as problem:
        if cfg.on_invalid_file == "error":
            raise InputError(
                f"{problem} (set input.on_invalid_file: quarantine to send the file's "
                "documents to rejected/ instead)"
            ) from problem
        known = problem.num_rows is not None
        return InputFile(
            path, display, relpath, problem.num_rows or 0, size, rows if known else (),
            has_id, problem=(problem.rule, str(problem)), partitions=partitions,
        )  # fmt: skip
    return InputFile(
        path, display, relpath, meta.num_rows, size, rows, has_id, schema=schema,
        partitions=partitions,
    )  # fmt: skip


def check_id_statistics(meta: pq.FileMetaData, column: str, display: str) -> None:
    """Null or empty ids that the footer's column statistics already show,
    found at planning instead of inside a Ray task. Files written without
    statistics are checked when their rows are read."""
    if meta.num_row_groups == 0:
        return
    first = meta.row_group(0)
    index = next(
        (j for j in range(first.num_columns) if first.column(j).path_in_schema == column), None
    )
    if index is None:
        return
    start = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        stats = group.column(index).statistics
        rows = f"rows {start}-{start + group.num_rows - 1}"
        start += group.num_rows
        if stats is None:
            continue
        found = None
        if stats.has_null_count and stats.null_count:
            found = f"{stats.null_count} null ids"
        elif stats.has_min_max and stats.min in ("", b""):
            found = "an empty id"
        if found:
            raise InputError(
                f"{display}: row group {i} ({rows}) holds {found} in column '{column}' (from "
                "the file's statistics; set input.id_policy: generate to fill them with "
                "'<path>#<row>', or input.on_invalid_document: quarantine to reject them)"
            )


def check_text_column(
    schema: pa.Schema, text_column: str, display: str, num_rows: int | None = None
) -> None:
    if text_column not in schema.names:
        raise FileProblem(
            f"{display}: missing text column '{text_column}' "
            f"(columns: {', '.join(schema.names) or 'none'}; set input.text_column)",
            "missing_text_column",
            num_rows,
        )
    text_type = schema.field(text_column).type
    if pa.types.is_dictionary(text_type):
        text_type = text_type.value_type
    if text_type not in TEXT_TYPES:
        raise FileProblem(
            f"{display}: text column '{text_column}' has type {text_type}, expected string",
            "text_not_string",
            num_rows,
        )


def plan_units(
    files: list[InputFile], rows_per_task: int, min_rows_per_task: int = 0
) -> list[ReadUnit]:
    """Cut files into read units of whole row groups, about rows_per_task rows;
    files of fewer than min_rows_per_task rows are read whole, several to a
    unit (up to that many rows or FILES_PER_UNIT files): a task per tiny file
    costs more than its work."""
    units: list[ReadUnit] = []
    pending: list[FileSlice] = []  # small files waiting for a unit

    def add(slices: list[FileSlice]) -> None:
        units.append(ReadUnit(tuple(slices), len(units)))

    for f in files:
        if f.problem is not None:
            continue  # quarantined whole; the driver writes its rejected rows
        if f.num_rows < min_rows_per_task:
            pending.append(FileSlice(f, tuple(range(len(f.row_group_rows))), 0, f.num_rows))
            full = sum(s.num_rows for s in pending) >= min_rows_per_task
            if full or len(pending) == FILES_PER_UNIT:
                add(pending)
                pending = []
            continue
        if pending:
            add(pending)
            pending = []
        group: list[int] = []
        first = start = 0
        rows = 0
        for index, n in enumerate(f.row_group_rows):
            if group and rows + n > rows_per_task:
                add([FileSlice(f, tuple(group), first, rows)])
                group, first, rows = [], start, 0
            group.append(index)
            rows += n
            start += n
        if group or not f.row_group_rows:
            add([FileSlice(f, tuple(group), first, rows)])
    if pending:
        add(pending)
    return units


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
            tasks.append(ReadTask(_read_fn(self.read, unit), meta))
        return tasks


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
    read = functools.partial(read_unit, location, cfg=cfg, schema=schema)
    return UnitDatasource(location, units, read)


def parquet_datasource(
    location: Location,
    paths: list[str],
    columns: list[str] | None = None,
    transform: Callable[[ReadUnit, pa.Table], pa.Table] | None = None,
    counts: dict[str, tuple[int, int]] | None = None,
) -> UnitDatasource:
    """Files the job wrote itself (staging), one task per file, in the given
    order; `transform(unit, table)` runs on each (unit.index = file position).
    The driver opens none of them: `counts` (path -> rows, bytes), where the
    caller knows them from the plan and the listing, become the blocks'
    metadata; without them Ray Data learns the counts from the blocks."""
    units = []
    for index, path in enumerate(paths):
        rows, size = (counts or {}).get(path, (0, 0))
        f = InputFile(path, location.display(path), path, rows, size, (), True)
        units.append(ReadUnit((FileSlice(f, (), 0, rows),), index))
    read = functools.partial(read_columns, location, columns=columns, transform=transform)
    return UnitDatasource(location, units, read, counted=counts is not None)


def read_columns(
    location: Location,
    unit: ReadUnit,
    columns: list[str] | None,
    transform: Callable[[ReadUnit, pa.Table], pa.Table] | None = None,
) -> pa.Table:
    (whole,) = unit.slices  # a file the job wrote: one unit each (parquet_datasource)
    table = read_parquet(location, whole.file.path, columns)
    return transform(unit, table) if transform else table


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
    with location.fs.open(piece.file.path, "rb") as handle:
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


__all__ = [
    "InputError",
    "InputFile",
    "ReadUnit",
    "UnitDatasource",
    "input_datasource",
    "parquet_datasource",
    "StorageError",
    "discover_inputs",
    "plan_units",
    "prepare_table",
    "read_unit",
]
