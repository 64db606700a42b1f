"""The `input` section and the input files: finding them, checking every
footer on the driver (or in Ray tasks past FOOTERS_IN_TASKS files) so a
missing column, a wrong type or a file that is not Parquet fails fast with
the file's name, and cutting them into read units at row-group borders
(independent of the cluster size, so output does not depend on it)."""

from __future__ import annotations

import functools
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from dedupe_at_scale import columns, formats
from dedupe_at_scale.io.fanout import map_files
from dedupe_at_scale.io.storage import (
    InputListing,
    Location,
    list_input_files,
    open_read,
)
from dedupe_at_scale.sections import Require, Section, SpecPath

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


class InputConfig(Section):
    # Where the shards are (dir, file, glob, s3://...); --input overrides it.
    uri: SpecPath | None = None
    text_column: str = "text"
    # When the column is absent, ids are generated as "<relative path>#<row>".
    id_column: str = "id"
    # The column holding each document's URL: the url_filter stage runs on
    # it (block lists; a `domain` column); absent, the stage is off.
    url_column: str | None = None
    # What a document with null text, invalid UTF-8 or an id seen before does:
    # stop the job with an error naming the file and row, or go to rejected/
    # with stage "input" and the problem as its rule.
    on_invalid_document: Literal["error", "quarantine"] = "error"
    # What a file that cannot be used does (not Parquet, truncated, empty,
    # corrupt pages, no text column, text of a non-string type): stop the job
    # naming the file, or send its documents to rejected/ with the reason.
    on_invalid_file: Literal["error", "quarantine"] = "error"
    # Upper bound on rows per read task; files are split at row-group borders.
    rows_per_task: int = 20_000
    # Files with fewer rows are read whole, several to a task, up to this
    # many rows (or 256 files): a task per tiny file costs more than its work.
    min_rows_per_task: int = 200
    # Null or empty ids: "require" makes them invalid documents (see
    # on_invalid_document, rule null_id); "generate" fills them with
    # "<relative path>#<row>" (the id column is then string in every file).
    id_policy: Literal["require", "generate"] = "require"
    # Column -> pyarrow type name ("string", "int64", "double", ...): pins a
    # column's type where shards disagree; every other column is unified by
    # the rules in io/schema.py.
    # (The YAML key is `schema`; the attribute is pinned_types, as a pydantic
    # model has a `schema` method of its own.)
    pinned_types: dict[str, str] | None = Field(None, alias="schema")
    # What a row is: pre-training text (one column, text_column), or a
    # post-training example whose parts are columns named by `fields`
    # (formats.py lists each format's fields and their default columns).
    format: Literal["text", "instruction", "chat", "preference", "reward"] = "text"
    # Field -> input column, e.g. {prompt: question, response: answer};
    # for chat also the message struct's keys, e.g. {role: from, content: value}.
    fields: dict[str, str] = Field(default_factory=dict)
    # An input column named like one the job writes (language, n_tokens,
    # q_*, split, ...): "rename" keeps it as input_<name> (the manifest's
    # input_schema.renamed_columns lists them); "error" stops the job.
    on_column_clash: Literal["rename", "error"] = "rename"
    # "hive": key=value directories below the input root (lang=en/, as Hive,
    # Spark and Ray Data write them) become string columns of their files'
    # rows, where a file lacks that column; "none": paths are only paths.
    partitioning: Literal["hive", "none"] = "hive"

    @property
    def document_column(self) -> str:
        """The column the stages read as a row's text: text_column, or for
        post-training formats the rendered conversation (an internal column)."""
        return self.text_column if self.format == "text" else columns.TEXT

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.rows_per_task > 0, "input.rows_per_task", "must be positive")
        if self.format != "text":
            problem = formats.mapping_problem(self)
            require(problem is None, "input.fields", problem or "")


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
            with open_read(location, path, size) as handle:
                footer = pq.ParquetFile(handle)
                # Not meta.schema: FileMetaData and the ParquetSchema it makes
                # hold each other, so every footer (whole documents in the
                # text column's statistics) lived until the cyclic collector
                # ran: 75 MiB of the driver after 200 footers of 5M documents.
                meta, schema = footer.metadata, footer.schema_arrow
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
