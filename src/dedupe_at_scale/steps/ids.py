"""Duplicate document ids, found across all staged files with Ray tasks.

Ids are hashed into partitions, so every copy of an id meets in one task. Of
documents still kept after annotation, the first in input order keeps its
id; each later one is a "duplicate_id" problem: an error naming both places,
or (input.on_invalid_document: quarantine) a rejection with stage "input".
Decisions are written per staged file, like the dedup decisions.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import TASK_RETRIES, JobConfig
from dedupe_at_scale.io.reader import InputError
from dedupe_at_scale.io.storage import Location, read_parquet
from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.steps.base import (
    Decision,
    GlobalStep,
    StagedFile,
    StagedView,
    StepOutcome,
    decision_paths,
)
from dedupe_at_scale.steps.exchange import (
    Exchange,
    Outbox,
    mailbox_count,
    receive,
    run_with_mailboxes,
)
from dedupe_at_scale.steps.tasks import as_returns, call, split

ID_DECISION_SCHEMA = pa.schema([(col.UID, pa.int64()), ("reason", pa.string())])


class IdCheck(GlobalStep):
    """`input` section: ids must be unique across all files."""

    name = "ids"
    stage = "input"

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return True

    def run(self, view: StagedView) -> StepOutcome | None:
        if not view.has_ids:
            return None  # generated ids are unique by construction
        n_files = len(view.paths)
        boxes = mailbox_count(
            view.cfg.dedup.exchange, n_files * view.partitions, max(n_files, view.partitions)
        )
        written = run_with_mailboxes("ids", boxes, lambda ex: _find_repeats(ex, view))
        repeated = sum(n for n, _ in written)
        examples = [example for _, example in written if example]
        cfg = view.cfg
        if repeated and cfg.input.on_invalid_document == "error":
            raise InputError(
                f"duplicate document ids: {examples[0]} ({repeated} documents repeat "
                "an earlier id; set input.on_invalid_document: quarantine to keep the first "
                "and reject the others)"
            )
        paths = decision_paths(view, "ids")
        decision = Decision(functools.partial(_apply_file, view.location, paths))
        return StepOutcome({"repeated_ids": repeated}, decision if repeated else None)


def _find_repeats(ex: Exchange, view: StagedView) -> list[tuple[int, str | None]]:
    """Per staged file: how many of its ids repeat an earlier one, and an example."""
    n_files, partitions = len(view.paths), view.partitions
    id_hop, found_hop = ex.hop(partitions), ex.hop(n_files)
    scans = [
        call(
            _scan_ids,
            id_hop.returns,
            f,
            view.cfg.input.id_column,
            partitions,
            id_hop.outbox(f.index),
        )
        for f in view.files
    ]
    by_partition = id_hop.inboxes(scans)
    found = found_hop.inboxes(
        [
            call(_repeats, found_hop.returns, n_files, by_partition[p], found_hop.outbox(p))
            for p in range(partitions)
        ]
    )
    id_hop.release()
    paths = decision_paths(view, "ids")
    return ray.get(
        [_write_id_decisions.remote(view.location, paths[f], found[f]) for f in range(n_files)]
    )


def _apply_file(location: Location, paths: list[str], index: int, table: pa.Table) -> pa.Table:
    repeated = read_parquet(location, paths[index])
    return apply_id_decisions(table, repeated)


def apply_id_decisions(table: pa.Table, decisions: pa.Table) -> pa.Table:
    """Mark the documents of a staged block whose id repeats an earlier one."""
    if decisions.num_rows == 0 or table.num_rows == 0:
        return table
    pos, repeated = col.decided_rows(table, decisions)
    if not repeated.any():
        return table
    rule = pa.array(["duplicate_id"] * table.num_rows, pa.string())
    return col.mark_rejected(table, repeated, "input", rule, decisions.column("reason").take(pos))


@ray.remote(max_retries=TASK_RETRIES)
def _scan_ids(staged: StagedFile, id_column, partitions, out: Outbox):
    file_index = staged.index
    table = staged.read_kept([id_column, col.FILE, col.ROW])
    ids = pc.cast(table.column(id_column), pa.string()).combine_chunks()
    hashes = string_hashes(ids)
    where = pc.binary_join_element_wise(
        table.column(col.FILE), pc.cast(table.column(col.ROW), pa.string()), "#"
    )
    table_of_ids = pa.table(
        {
            "hash": hashes,
            "id": ids,
            "uid": table.column(col.UID),
            "file": pa.array(np.full(len(ids), file_index, np.int64)),
            "where": where,
        }
    )
    dest = (hashes % np.uint64(partitions)).astype(np.int64)
    return as_returns(out.send(split(table_of_ids, dest, partitions)))


@ray.remote(max_retries=TASK_RETRIES)
def _repeats(n_files, pieces, out: Outbox):
    """Rows whose id appeared at a smaller uid, split by staged file."""
    table = receive(pieces).sort_by(
        [("hash", "ascending"), ("id", "ascending"), ("uid", "ascending")]
    )
    n = table.num_rows
    if n < 2:
        return as_returns(out.send(split(_empty_repeats(), np.zeros(0, np.int64), n_files)))
    hashes = table.column("hash").to_numpy()
    ids = table.column("id")
    same = np.r_[
        False,
        (hashes[1:] == hashes[:-1])
        & pc.equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False),
    ]
    first = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
    rows = np.flatnonzero(same)
    where = table.column("where")
    reasons = [
        f"id {ids[int(r)].as_py()!r} at {where[int(r)].as_py()} repeats {where[int(first[r])].as_py()}"
        for r in rows
    ]
    repeats = pa.table(
        {
            col.UID: table.column("uid").take(pa.array(rows, pa.int64())),
            "reason": pa.array(reasons, pa.string()),
        },
        schema=ID_DECISION_SCHEMA,
    )
    return as_returns(out.send(split(repeats, table.column("file").to_numpy()[rows], n_files)))


def _empty_repeats() -> pa.Table:
    return ID_DECISION_SCHEMA.empty_table()


@ray.remote(max_retries=TASK_RETRIES)
def _write_id_decisions(location, path, pieces):
    decisions = receive(pieces).sort_by(col.UID)
    pq.write_table(decisions, path, filesystem=location.arrow_fs)
    example = decisions.column("reason")[0].as_py() if decisions.num_rows else None
    return decisions.num_rows, example
