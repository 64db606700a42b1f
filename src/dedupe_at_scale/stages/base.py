"""The per-document stage contract.

A stage is a class with a registry name, the stage name its rejections carry
in rejected/ (None when it never rejects), a test of whether the config turns
it on, the Arrow fields it adds (so the output schema is known without running
it), and a call over a `Batch` that returns a `StageResult`: new columns and
rejections as Arrow arrays of the batch's length. Models load in __init__,
once per worker process. No Ray here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.report_parts import Distribution, ReportSection
    from dedupe_at_scale.sections import Section


class Batch:
    """The rows a stage sees: the input columns plus those of the stages
    before it, and which rows are still kept. Post-training rows have
    several texts (views: prompt, response, ...; formats.py); a text row's
    every view is its text."""

    def __init__(self, table: pa.Table, text_column: str, post_training: bool = False):
        self.table = table
        self.text_column = text_column
        self.post_training = post_training
        self._texts: dict[str, list[str]] = {}
        # Each text column as one array, made once per batch: every stage
        # reads it, and combining a column of several chunks copies it.
        self._arrays: dict[str, pa.Array] = {}

    def view_column(self, view: str | None) -> str:
        if view is None or view == "conversation" or not self.post_training:
            return self.text_column
        return col.VIEW_PREFIX + view

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def active(self) -> np.ndarray:
        """Positions of the rows no stage has rejected so far."""
        return np.flatnonzero(
            pc.is_null(self.table.column(col.STAGE)).to_numpy(zero_copy_only=False)
        )

    def text_array(self, view: str | None = None) -> pa.Array:
        name = self.view_column(view)
        if name not in self._arrays:
            self._arrays[name] = self.table.column(name).combine_chunks()
        return self._arrays[name]

    def texts(self, rows: Sequence[int], view: str | None = None) -> list[str]:
        # Python strings only for stages that need them, made once per batch.
        name = self.view_column(view)
        if name not in self._texts:
            self._texts[name] = self.table.column(name).to_pylist()
        texts = self._texts[name]
        return [texts[i] for i in rows]

    def languages(self, view: str | None) -> tuple[pa.Array, pa.Array]:
        """The language and score columns that describe `view`'s text."""
        if view == "prompt" and self.post_training:
            return self.column(col.PROMPT_LANGUAGE), self.column(col.PROMPT_LANGUAGE_SCORE)
        return self.column(col.LANGUAGE), self.column(col.LANGUAGE_SCORE)

    def column(self, name: str) -> pa.Array:
        return self.table.column(name).combine_chunks()

    def update(self, table: pa.Table, text_changed: bool) -> None:
        self.table = table
        if text_changed:
            self._texts.pop(self.text_column, None)
            self._arrays.pop(self.text_column, None)


def take_rows(array: pa.Array, rows: np.ndarray) -> pa.Array:
    """The array's rows at `rows` (ascending positions, as Batch.active gives
    them); the array itself, not a copy, when they are all of its rows."""
    return array if len(rows) == len(array) else array.take(pa.array(rows))


def string_buffers(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and int64 offsets of a string array, for numba kernels
    (nulls become empty strings). Both read-only whatever made the buffers:
    numba compiles a kernel once per writability, and an Arrow buffer is
    writable when a cast or fill made it, read-only when a file's read did."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string()) if not pa.types.is_large_string(array.type) else array
    array = pc.fill_null(array, "")
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return read_only(data), read_only(offsets)


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of `array` (the array itself is left as it was)."""
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass
class Rejections:
    """Rows rejected by one stage: a mask over the batch and, on those rows,
    the rule, its measured value and a reason a person can read."""

    mask: np.ndarray
    rule: pa.Array
    value: pa.Array
    reason: pa.Array


def rejections(
    n: int,
    rows: Sequence[int],
    rules: Sequence[str],
    values: Sequence[float | None],
    reasons: Sequence[str],
) -> Rejections | None:
    """Full-length rejection arrays from per-rejected-row lists."""
    if len(rows) == 0:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    return Rejections(
        mask,
        scatter(n, rows, rules, pa.string()),
        scatter(n, rows, values, pa.float64()),
        scatter(n, rows, reasons, pa.string()),
    )


def scatter(n: int, rows: Sequence[int], values: Sequence, kind: pa.DataType) -> pa.Array:
    """A length-n array holding `values` at `rows` and nulls elsewhere."""
    full: list = [None] * n
    for i, v in zip(rows, values):
        full[i] = v
    return pa.array(full, kind)


class ResourceError(RuntimeError):
    """A file a stage prepares its resource from cannot be used (unreadable,
    missing, without a needed field); the message names the file."""


class Files(Protocol):
    """The job's storage as a stage's prepare() reads it (local paths and
    any URI the job reads; job/plan.py gives it). Errors are OSErrors that
    name the URI."""

    def read_text(self, uri: str) -> str: ...

    def read_bytes(self, uri: str) -> bytes: ...

    def find(self, uri: str) -> list[str] | None:
        """The URIs of the files at or under a URI, sorted (a file: itself);
        None when nothing is there."""
        ...

    def list_dir(self, uri: str) -> list[str]:
        """The names directly under a folder."""
        ...


@dataclass
class StageResult:
    columns: dict[str, pa.Array] = field(default_factory=dict)
    rejected: Rejections | None = None
    text: pa.Array | None = None  # replacement text for the whole batch


class Stage:
    """Base of a per-document stage; see the module docstring."""

    name: str = ""  # registry name; busy seconds are reported under it
    stage: str | None = None  # stage of its rejections in rejected/ and the manifest
    # Columns that stay in the output (as nulls) when the stage is off, so
    # every run has one schema; only the language columns need it.
    columns_when_off: bool = False
    # Shared resources the stage is built with (an index made once on the
    # driver and shipped through Ray's object store): their names.
    needs: tuple[str, ...] = ()
    # A config section of its own, beside JobConfig's (config.py adds it to
    # the job's config under this name): cfg.<section> is a `Config`.
    section: str | None = None
    Config: type[Section] | None = None
    # Its reasons name list entries worth counting (the report's top table).
    report_reasons: bool = False
    # A column of [start, end) code points: the passage a rejected sample
    # shows and marks (e.g. the first eval match), not the text's start.
    sample_span: str | None = None

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    @staticmethod
    def prepare(cfg: JobConfig, files: Files) -> dict[str, Any]:
        """The shared resources it `needs`, by name, built once on the
        driver before Ray starts (a bad one is a ConfigError then)."""
        return {}

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        raise NotImplementedError

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        """The columns this stage adds, in order."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Once per worker process, before the first batch: what the first
        call would otherwise pay (tables, kernels loaded from numba's cache),
        so that busy seconds are the work's and set-up is counted apart."""

    def __call__(self, batch: Batch) -> StageResult:
        raise NotImplementedError

    @staticmethod
    def report(
        cfg: JobConfig, counters: Mapping[str, int], rules: Mapping[str, int]
    ) -> dict | None:
        """The stage's own manifest section (under its name), from its
        counters (its __dds_count_ columns, summed over the run) and its
        rejections per rule; None: it has none."""
        return None

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        """Its lines in the end-of-run summary, from its manifest section
        (called only when the section is there and not off)."""
        return []

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        """Its sections of report.html (report_parts.py), from its manifest
        section (called as summary() is)."""
        return []

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        """Its columns the report draws as histograms, when it is on."""
        return []

    @staticmethod
    def trace_detail(row: dict[str, Any]) -> str:
        """What `trace` prints after "passed" for a document the stage let
        through, from its row in data/ (e.g. ": en (0.98)"); "" for nothing."""
        return ""

    @staticmethod
    def trace_note(rows: list[dict[str, Any]]) -> str:
        """What `trace` adds to the data/ line of a kept document, from its
        rows there (e.g. its token count); "" for nothing."""
        return ""
