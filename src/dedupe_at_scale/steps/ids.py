"""Duplicate document ids, found across all staged files with Ray tasks.

Ids are hashed into partitions, so every copy of an id meets in one task. Of
documents still kept after annotation, the first in input order keeps its
id; each later one is a "duplicate_id" problem: an error naming both places,
or (input.on_invalid_document: quarantine) a rejection with stage "input".
Staged files are read in groups, several at a time, as dedup reads them;
a decision file is written only for a staged file some of whose ids repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.inputs import InputError
from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.steps.base import (
    Decision,
    GlobalStep,
    StagedGroup,
    StagedView,
    StepOutcome,
    decision_files,
    decision_paths,
    group_count,
    group_files,
)
from dedupe_at_scale.steps.exchange import (
    Exchange,
    Outbox,
    mailbox_count,
    receive,
    run_with_mailboxes,
)
from dedupe_at_scale.steps.tasks import TASK_RETRIES, as_returns, call, split, takes_pieces

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

ID_DECISION_SCHEMA = pa.schema([(col.UID, pa.int64()), ("reason", pa.string())])
# What the partitions send back: the decisions and the staged file each is for.
FOUND_SCHEMA = ID_DECISION_SCHEMA.append(pa.field("file", pa.int64()))


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
        groups = group_files(view.files, group_count(view.partitions))
        boxes = mailbox_count(
            view.cfg.dedup.exchange,
            len(groups) * view.partitions,
            max(len(groups), view.partitions),
        )
        written = run_with_mailboxes("ids", boxes, lambda ex: _find_repeats(ex, view, groups))
        # (staged file, repeats, example), in file order; only files with repeats
        per_file = sorted(found for group in written for found in group)
        repeated = sum(n for _, n, _ in per_file)
        cfg = view.cfg
        if repeated and cfg.input.on_invalid_document == "error":
            raise InputError(
                f"duplicate document ids: {per_file[0][2]} ({repeated} documents repeat "
                "an earlier id; set input.on_invalid_document: quarantine to keep the first "
                "and reject the others)"
            )
        with_repeats = {f for f, _, _ in per_file}  # no decision file elsewhere
        files = decision_files(decision_paths(view, "ids"), view, with_repeats)
        decision = Decision(_apply_file, files=files)
        return StepOutcome({"repeated_ids": repeated}, decision if repeated else None)


def _find_repeats(
    ex: Exchange, view: StagedView, groups: list[StagedGroup]
) -> list[list[tuple[int, int, str]]]:
    """Per group of staged files: (file, how many of its ids repeat an
    earlier one, an example) for each of its files that has any."""
    n_groups, partitions = len(groups), view.partitions
    id_hop, found_hop = ex.hop(partitions), ex.hop(n_groups)
    scans = [
        call(
            _scan_ids,
            id_hop.returns,
            group,
            g,
            view.cfg.input.id_column,
            partitions,
            id_hop.outbox(g),
        )
        for g, group in enumerate(groups)
    ]
    by_partition = id_hop.inboxes(scans)
    found = found_hop.inboxes(
        [
            call(_repeats, found_hop.returns, n_groups, by_partition[p], found_hop.outbox(p))
            for p in range(partitions)
        ]
    )
    id_hop.release()
    paths = decision_paths(view, "ids")
    return ray.get(
        [
            call(_write_id_decisions, 1, view.location,
                 {f.index: paths[f.index] for f in g.files}, found[i])[0]
            for i, g in enumerate(groups)
        ]
    )  # fmt: skip


def _apply_file(index: int, table: pa.Table, decided: pa.Table | None) -> pa.Table:
    return table if decided is None else apply_id_decisions(table, decided)


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
def _scan_ids(group: StagedGroup, group_index, id_column, partitions, out: Outbox):
    # The group's files are fetched several at a time: on an object store a
    # file is a few requests, each a wait.
    tables = in_threads(lambda f: f.read_kept([id_column, col.FILE, col.ROW]), group.files)
    table = pa.concat_tables(tables)
    ids = pc.cast(table.column(id_column), pa.string()).combine_chunks()
    hashes = string_hashes(ids)
    where = pc.binary_join_element_wise(
        table.column(col.FILE), pc.cast(table.column(col.ROW), pa.string()), "#"
    )
    files = [f.index for f in group.files]
    table_of_ids = pa.table(
        {
            "hash": hashes,
            "id": ids,
            "uid": table.column(col.UID),
            "group": pa.array(np.full(len(ids), group_index, np.int64)),
            "file": pa.array(np.repeat(files, [t.num_rows for t in tables]).astype(np.int64)),
            "where": where,
        }
    )
    dest = (hashes % np.uint64(partitions)).astype(np.int64)
    return as_returns(out.send(split(table_of_ids, dest, partitions)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _repeats(n_groups, pieces, out: Outbox):
    """Rows whose id appeared at a smaller uid, split by group of staged files."""
    table = receive(pieces).sort_by(
        [("hash", "ascending"), ("id", "ascending"), ("uid", "ascending")]
    )
    n = table.num_rows
    if n < 2:
        return as_returns(out.send(split(_empty_repeats(), np.zeros(0, np.int64), n_groups)))
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
    take = pa.array(rows, pa.int64())
    repeats = pa.table(
        {
            col.UID: table.column("uid").take(take),
            "reason": pa.array(reasons, pa.string()),
            "file": table.column("file").take(take),
        },
        schema=FOUND_SCHEMA,
    )
    return as_returns(out.send(split(repeats, table.column("group").to_numpy()[rows], n_groups)))


def _empty_repeats() -> pa.Table:
    return FOUND_SCHEMA.empty_table()


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _write_id_decisions(location, paths: dict[int, str], pieces):
    """A decision file for each of the group's staged files whose ids repeat;
    none for the others (their rows need no decision)."""
    found = receive(pieces).sort_by(col.UID)
    with_repeats, owner = np.unique(found.column("file").to_numpy(), return_inverse=True)
    parts = split(found.select(ID_DECISION_SCHEMA.names), owner, len(with_repeats))

    def write(file: int, decisions: pa.Table) -> tuple[int, int, str]:
        pq.write_table(decisions, paths[file], filesystem=location.arrow_fs)
        return file, decisions.num_rows, decisions.column("reason")[0].as_py()

    return in_threads(lambda part: write(*part), list(zip(with_repeats.tolist(), parts)))
