"""`dedupe-at-scale trace OUT ID`: one document's way through a finished
run, from the output alone: where it came from (lineage), each stage's
verdict, its duplicate cluster and kept member, its mixture copies, split
and subsets.

It reads the shard lists from the manifest (no listing) and, in each
shard, only the row groups whose id statistics admit the id (the id column
first, then the matching rows), so an output ordered by input reads
little; a shuffled one (a mixture's order) still reads every shard's id
column, never its text."""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.output import MANIFEST
from dedupe_at_scale.io.storage import StorageError, read_json, resolve
from dedupe_at_scale.report_parts import shown_number
from dedupe_at_scale.stages import REGISTRY as STAGES
from dedupe_at_scale.steps import REGISTRY as STEPS

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import Location, StorageConfig

# What each stage prints of a document it let through (Stage.trace_detail);
# of the classes reporting under one stage name, the first registered speaks
# for it (reversed: the first one's entry is written last).
TRACE_DETAIL = {s.stage: s.trace_detail for s in reversed(STAGES)}


class NotInOutput(StorageError):
    """The id is in no row of the output."""


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

    @property
    def id_column(self) -> str:
        return self.manifest["config"]["input"]["id_column"]

    def names(self) -> list[str]:
        return list(self.shards)

    def find(self, name: str, column: str, value: str | Collection[str]) -> list[dict]:
        return find_rows(self.location, self.shards.get(name, []), column, value)


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


def trace(uri: str, doc_id: str, storage: StorageConfig | None = None) -> str:
    out = open_output(uri, storage)
    data = out.find("data", out.id_column, doc_id)
    rejected = out.find("rejected", "id", doc_id)
    if not data and not rejected:
        raise NotInOutput(f"{doc_id} is not in {uri}: neither data/ nor rejected/ holds it")
    row = data[0] if data else rejected[0]
    lines = [doc_id, _source_line(row, out.manifest)]
    lines += _stage_lines(
        out.manifest, data[0] if data else None, rejected[0] if rejected else None
    )
    if data:
        notes = "".join(part.trace_note(data) for part in (*STEPS, *STAGES))
        lines.append(f"  data/: {len(data)} row(s){notes}")
    for step in STEPS:
        lines += step.trace_lines(out, doc_id, data)
    return "\n".join(lines)


def _source_line(row: dict, manifest: dict) -> str:
    root = manifest["input"].get("uri", "")
    if row.get("source_file") is None:
        return "  source: not recorded (output.lineage was off)"
    at = "" if row.get("source_row") is None else f", row {row['source_row']}"
    return f"  source: {posixpath.join(root, row['source_file'])}{at}"


def _stage_lines(manifest: dict, kept: dict | None, rejected: dict | None) -> list[str]:
    """Each stage that ran, in order: passed, rejected (with the reason) or
    not reached; with the kept document's values."""
    lines = ["  stages:"]
    reached = True
    for stage, counts in manifest["counts"]["stages"].items():
        if not counts.get("enabled", True):
            continue
        if rejected is not None and rejected["stage"] == stage:
            value = (
                "" if rejected["value"] is None else f" (value {shown_number(rejected['value'])})"
            )
            reason = rejected["reason"]
            if not reason.startswith(rejected["rule"]):  # dedup's reason is the kept member
                reason = f"{rejected['rule']}: {reason}"
            lines.append(f"    {stage:<14} rejected: {reason}{value}")
            reached = False
        elif not reached:
            lines.append(f"    {stage:<14} not reached")
        else:
            lines.append(f"    {stage:<14} passed{_values(stage, kept)}")
    return lines


def _values(stage: str, row: dict | None) -> str:
    detail = TRACE_DETAIL.get(stage)
    return "" if row is None or detail is None else detail(row)
