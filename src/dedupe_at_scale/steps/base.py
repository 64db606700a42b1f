"""The global step contract.

A global step sees every kept document at once (duplicate ids, dedup, the
mixture plan). It is a class with a name (its timing and manifest key), the
stage its rejections carry, a test of whether it runs, and `run(view)`: given
a read-only view of the staged data it does its work in Ray core tasks and
returns a `StepOutcome`, whose `Decision` is a pure function over one staged
file's rows. The staged reader applies the decisions in step order whenever
staged rows are read; a step sees the decisions of the steps before it.
A new step is one module plus one line in steps/__init__.py's REGISTRY.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.output import parquet_sizes
from dedupe_at_scale.io.staged import (
    Decision,
    DecisionFiles,
    columns_to_read,
    for_file,
    read_staged,
)

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.storage import Location
    from dedupe_at_scale.report_parts import Distribution, ReportPairs, ReportSection
    from dedupe_at_scale.sections import Section


@dataclass(frozen=True)
class StepOutput:
    """A directory the step publishes beside data/ and rejected/ (one it
    declares in `outputs`): `columns` of its per-staged-file `files`."""

    name: str
    files: list[str]
    columns: list[str]
    # path -> (rows, bytes) of each file, from the tasks that wrote them;
    # None: the write pass reads them (io/output.file_counts).
    counts: dict[str, tuple[int, int]] | None = None


@dataclass
class StepOutcome:
    # The step's manifest section, before finish() sees the written output.
    report: dict[str, Any]
    decision: Decision | None = None
    # Per staged block while the output is written: a few summary rows
    # (e.g. units per group), folded in tasks (job/block_parts.py), then
    # handed to finish().
    block_summary: Callable[[pa.Table], list[dict[str, Any]]] | None = None
    # The fields that name a summary row (e.g. its group); every other field
    # is a number, summed over the rows with the same keys.
    block_summary_keys: tuple[str, ...] = ()
    # (report, summary rows, rejections per rule of this step's stage) -> the
    # final manifest section.
    finish: Callable[[dict[str, Any], list[dict[str, Any]], dict[str, int]], dict[str, Any]] = (
        lambda report, rows, rules: report
    )
    # Kept rows of one block before they are written (e.g. repeated copies),
    # and the columns the whole output is then ordered by.
    arrange_kept: Callable[[pa.Table], pa.Table] | None = None
    order_by: list[str] | None = None
    output: StepOutput | None = None
    # Directories published as a selection of data/'s rows, in data/'s order
    # (subsets/25, splits/train): name -> the rows of a data/ block to keep.
    selections: dict[str, Callable[[pa.Table], pa.Table]] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedFile:
    """One staged file with the decisions made so far; picklable, for tasks."""

    location: Location
    path: str
    index: int
    columns: tuple[str, ...]  # the staged files' columns
    decisions: tuple[Decision, ...] = ()
    size: int = 0  # bytes, from the listing (0: unknown)

    def read(self, columns: list[str]) -> pa.Table:
        """`columns` plus uid and stage of every row, the decisions applied."""
        wanted = list(dict.fromkeys([col.UID, col.STAGE, *columns]))
        names = columns_to_read(wanted, self.decisions, self.columns)
        table = read_staged(self.location, self.path, names, self.decisions, self.index, self.size)
        return table.select(wanted)

    def read_kept(self, columns: list[str]) -> pa.Table:
        """`columns` and uid of the rows still kept."""
        return col.kept_rows(self.read(columns)).drop_columns([col.STAGE])


@dataclass(frozen=True)
class StagedGroup:
    """Consecutive staged files read as one (their uid ranges follow each
    other, so uids stay increasing): a task's share when files are many."""

    files: tuple[StagedFile, ...]

    def read(self, columns: list[str]) -> pa.Table:
        return pa.concat_tables(self.read_each(columns))

    def read_each(self, columns: list[str]) -> list[pa.Table]:
        """Each file's rows (StagedFile.read), fetched several at a time."""
        return in_threads(lambda f: f.read(columns), self.files)

    def read_kept(self, columns: list[str]) -> pa.Table:
        return pa.concat_tables(in_threads(lambda f: f.read_kept(columns), self.files))


# Groups of staged files per hash partition in the steps that read files in
# groups (ids, dedup): enough tasks to spread a small job, while each hop's
# pieces (groups x partitions, groups x groups) stay a small multiple of the
# partitions. Past SPREAD_PARTITIONS (1.6M documents) each further partition
# adds one group: at 200 partitions four a partition made dedup take 48-61 s
# on 2 cores, one a partition 28-33 s, with the same output; at 10,000 (1B
# documents) a hop has 1.0e8 pieces, not 1.6e9 (docs/scaling.md).
GROUPS_PER_PARTITION = 4
SPREAD_PARTITIONS = 16


def group_count(partitions: int) -> int:
    """Groups of staged files (at most; never more than the files) for
    `partitions` hash partitions."""
    spread = min(partitions, SPREAD_PARTITIONS)
    return GROUPS_PER_PARTITION * spread + partitions - spread


def group_files(files: list[StagedFile], groups: int) -> list[StagedGroup]:
    """`files` in at most `groups` runs of consecutive files, of near-equal count."""
    bounds = np.linspace(0, len(files), min(groups, len(files)) + 1).round().astype(int)
    return [StagedGroup(tuple(files[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]


# The global steps move a fixed number of bytes per document (ids, band keys,
# signatures), so documents measure their data volume, and a partition's
# tasks hold about this many documents' worth, however large the corpus or
# small the cluster (a cap by CPUs made 1.25M-document partitions at 5M
# documents on 2 cores). Partitions beyond what the volume needs only add
# tasks; their pieces are bounded by steps/exchange.py.
DOCS_PER_PARTITION = 100_000


def partition_count(documents: int) -> int:
    """Hash partitions of the global steps: one per DOCS_PER_PARTITION
    documents, at least one."""
    return max(1, -(-documents // DOCS_PER_PARTITION))


@dataclass(frozen=True)
class ClusterVerdict:
    excluded: np.ndarray  # the rows a cluster check rejects
    rule: str  # their rule
    table: pa.Table  # what the check writes for the partition (its file)


class ClusterCheck:
    """A check dedup's keep task runs on the rows of each cluster before it
    picks the survivor, for a step that needs clusters whole (consistency);
    a rejected row is no survivor. Its rows carry `stage` and one of `rules`
    (with `reason(rule, cluster id)`); it writes a file per partition under
    decisions/, named `prefix` + the partition, which its step publishes."""

    stage: str = ""
    rules: tuple[str, ...] = ()
    prefix: str = ""

    @staticmethod
    def applies(cfg: JobConfig) -> bool:
        raise NotImplementedError

    @staticmethod
    def columns(cfg: JobConfig) -> list[str]:
        """The staged columns it compares, beside the cluster's label and ids."""
        return []

    @staticmethod
    def resolve(members: pa.Table, cfg: JobConfig) -> ClusterVerdict:
        """`members`: one partition's cluster rows, sorted by label, then the
        keep rule."""
        raise NotImplementedError

    @staticmethod
    def reason(rule: pa.Array, cluster: pa.Array) -> pa.Array:
        return cluster


@dataclass(frozen=True)
class StagedView:
    """What a global step may read: the staged files (each holds an increasing
    range of uids, in input order), their column names, and where to write
    its per-file decisions."""

    cfg: JobConfig
    location: Location
    paths: tuple[str, ...]
    columns: tuple[str, ...]
    decisions_dir: str
    partitions: int  # hash partitions for the steps' shuffles
    has_ids: bool  # whether any input file has an id column
    decisions: tuple[Decision, ...] = field(default=())
    # What the run prepared before annotating, for steps that report on it
    # (e.g. the decontamination index's sizes): each prepared resource's
    # summary, by resource name.
    prepared: dict[str, Any] = field(default_factory=dict)
    # What dedup's keep task checks in each cluster (GlobalStep.cluster_check).
    cluster_checks: tuple[type[ClusterCheck], ...] = ()

    # Bytes of each staged file, from the listing (empty: not known).
    sizes: tuple[int, ...] = ()

    @property
    def files(self) -> list[StagedFile]:
        sizes = self.sizes or (0,) * len(self.paths)
        return [
            StagedFile(self.location, p, i, self.columns, for_file(self.decisions, i), size)
            for i, (p, size) in enumerate(zip(self.paths, sizes))
        ]

    def with_decision(self, decision: Decision) -> StagedView:
        return dataclasses.replace(self, decisions=(*self.decisions, decision))


class FinishedRows(Protocol):
    """A finished output as `trace` reads it (job/trace.py): the directories
    its manifest lists, and the rows of one whose `column` holds a value."""

    id_column: str  # the input's id column, as data/ names it

    def names(self) -> list[str]: ...

    def find(self, name: str, column: str, value: str | Collection[str]) -> list[dict]: ...


class GlobalStep:
    """Base of a global step; see the module docstring."""

    name: str = ""
    stage: str | None = ""  # None: the step never rejects
    # A config section of its own, beside JobConfig's (config.py adds it to
    # the job's config under this name): cfg.<section> is a `Config`.
    section: str | None = None
    Config: type[Section] | None = None
    # Every directory the step may publish beside data/, whatever the config
    # (its `outputs` under one config are among them).
    publishes: tuple[str, ...] = ()
    # Texts the report shows side by side (report_parts.ReportPairs).
    pairs: ReportPairs | None = None
    # Run on each duplicate cluster by dedup's keep task, where clusters are whole.
    cluster_check: type[ClusterCheck] | None = None

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        """Whether the config turns the step on."""
        raise NotImplementedError

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        """The columns the step adds to data/'s rows, known without running it."""
        return []

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema | None]:
        """Directories the step publishes under `cfg` and their schemas, known
        without running it (an empty shard stands in when nothing is written);
        None: data/'s schema (a selection of data/'s rows)."""
        return {}

    @staticmethod
    def check_outputs(
        cfg: JobConfig, data_rows: int, shards: dict[str, list[dict[str, Any]]]
    ) -> str | None:
        """What is wrong with its published directories (`shards`: each of
        its `outputs`' shards, with their rows) against data/'s `data_rows`,
        or None; the run then commits nothing."""
        return None

    @staticmethod
    def idle_report(cfg: JobConfig) -> dict[str, Any]:
        """The manifest section when the step did not run (off, or nothing
        was staged)."""
        return {"enabled": False}

    def run(self, view: StagedView) -> StepOutcome | None:
        """None when there is nothing to decide (e.g. no ids to check)."""
        raise NotImplementedError

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
    def trace_note(rows: list[dict[str, Any]]) -> str:
        """What `trace` adds to the data/ line of a kept document, from its
        rows there (e.g. its mixture copies); "" for nothing."""
        return ""

    @staticmethod
    def trace_lines(output: FinishedRows, doc_id: str, rows: list[dict[str, Any]]) -> list[str]:
        """Its lines in `trace`, after data/'s; `rows` are the document's
        rows in data/ (none when it was rejected)."""
        return []


def decision_paths(view: StagedView, prefix: str) -> list[str]:
    """One decision file per staged file, under the run's decisions/ (made
    at planning, OutputLayout.prepare)."""
    return [
        posixpath.join(view.decisions_dir, f"{prefix}-{f:05d}.parquet")
        for f in range(len(view.paths))
    ]


def decision_files(
    paths: list[str], view: StagedView, only: Collection[int] | None = None,
    sizes: dict[str, int] | None = None,
) -> DecisionFiles:  # fmt: skip
    """`paths` (decision_paths) as a Decision's files, with their sizes
    (path -> bytes, from the tasks that wrote them, or else from one listing
    of the decisions' folder); with `only`, the staged files outside it have
    none."""
    kept = [p if only is None or i in only else None for i, p in enumerate(paths)]
    if sizes is None:
        sizes = parquet_sizes(view.location, view.decisions_dir) if any(kept) else {}
    in_order = tuple(sizes.get(p, 0) if p is not None else 0 for p in kept)
    return DecisionFiles(view.location, tuple(kept), in_order)
