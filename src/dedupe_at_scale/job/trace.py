"""`dedupe-at-scale trace OUT ID`: one document's way through a finished
run, from the output alone: where it came from (lineage), each stage's
verdict, its duplicate cluster and kept member, its mixture copies, split
and subsets.

It reads the shard lists from the manifest (no listing), the id's entries
in index/ (job/id_index.py), and in the shards those name only the row
groups whose id statistics admit the id (io/finished.py)."""

from __future__ import annotations

import dataclasses
import posixpath
from typing import TYPE_CHECKING

from dedupe_at_scale.io.finished import open_output
from dedupe_at_scale.io.storage import StorageError
from dedupe_at_scale.job.id_index import shard_finder
from dedupe_at_scale.report_parts import shown_number
from dedupe_at_scale.stages import REGISTRY as STAGES
from dedupe_at_scale.steps import REGISTRY as STEPS

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import StorageConfig

# What each stage prints of a document it let through (Stage.trace_detail);
# of the classes reporting under one stage name, the first registered speaks
# for it (reversed: the first one's entry is written last).
TRACE_DETAIL = {s.stage: s.trace_detail for s in reversed(STAGES)}


class NotInOutput(StorageError):
    """The id is in no row of the output."""


def trace(uri: str, doc_id: str, storage: StorageConfig | None = None) -> str:
    out = open_output(uri, storage)
    out = dataclasses.replace(out, locate=shard_finder(out))
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
