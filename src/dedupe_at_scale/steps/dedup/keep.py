"""Dedup's keep sub-step: every document of a connected component learns its
label, the members of each component meet in one partition, the first by
the keep rule survives (after the cluster checks other steps declare,
GlobalStep.cluster_check), and the decisions go back to each staged file as
one small file."""

from __future__ import annotations

import posixpath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.io.storage import put_parquet
from dedupe_at_scale.steps.base import ClusterCheck, StagedGroup, StagedView, decision_paths
from dedupe_at_scale.steps.dedup.edges import file_of, partition_of
from dedupe_at_scale.steps.exchange import Exchange, Outbox, receive
from dedupe_at_scale.steps.tasks import TASK_RETRIES, as_returns, call, split, takes_pieces

ID_KEY = "__dds_id_key"


DECISION_SCHEMA = pa.schema(
    [
        (col.UID, pa.int64()),
        ("id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept", pa.bool_()),
        ("rule", pa.string()),
        # MinHash estimate of the Jaccard similarity to the kept member (1 for it).
        ("similarity", pa.float32()),
    ]
)


def choose_keepers(
    ex: Exchange, view: StagedView, groups: list[StagedGroup],
    indexes: tuple[ray.ObjectRef, ray.ObjectRef], keep: list[tuple[str, str]], labels: list,
    stats: dict[str, Any],
) -> dict[str, tuple[int, int]]:  # fmt: skip
    """From each component's labels to the decision files of the staged
    files, one per file: path -> (rows, bytes), in staged order, as the
    tasks that wrote them count them (no footer or listing read later);
    adds the cluster counts to `stats`."""
    staged_index, group_index = indexes
    partitions, n_groups = view.partitions, len(groups)
    label_hop = ex.hop(n_groups)
    by_group = label_hop.inboxes(
        [
            call(_route_labels, label_hop.returns, group_index, n_groups, lab, label_hop.outbox(p))
            for p, lab in enumerate(labels)
        ]
    )
    id_column = view.cfg.input.id_column
    checks = view.cluster_checks
    compared = [c for check in checks for c in check.columns(view.cfg)]
    member_hop = ex.hop(partitions)
    members = member_hop.inboxes(
        [
            call(_member_keys, member_hop.returns, groups[g], id_column, keep, compared,
                 partitions, by_group[g], member_hop.outbox(g))
            for g in range(n_groups)
        ]
    )  # fmt: skip
    label_hop.release()
    decisions = decision_paths(view, "decisions")
    fs = view.location.fs
    for check in checks:  # an interrupted run's files, perhaps for other partitions
        for path in fs.glob(posixpath.join(view.decisions_dir, check.prefix + "*")):
            fs.rm(path)
    chosen_hop = ex.hop(n_groups)
    chosen = [
        call(
            _choose_keepers, chosen_hop.returns + 1, group_index, n_groups, keep, view.cfg,
            view.location, checks,
            [posixpath.join(view.decisions_dir, f"{c.prefix}{p:05d}.parquet") for c in checks],
            members[p], chosen_hop.outbox(p),
        )
        for p in range(partitions)
    ]  # fmt: skip
    by_file = chosen_hop.inboxes([c[:-1] for c in chosen])
    member_hop.release()
    first = np.cumsum([0] + [len(g.files) for g in groups])
    written = ray.get(
        [
            call(
                _write_decisions, 1, view.location, decisions[first[g] : first[g + 1]],
                staged_index, first[g], by_file[g],
            )[0]
            for g in range(n_groups)
        ]
    )  # fmt: skip
    # Members per cluster: {size: clusters}, for the report (per-partition bincounts).
    parts = ray.get([c[-1] for c in chosen])
    sizes = np.zeros(max((len(p) for p in parts), default=0), np.int64)
    for part in parts:
        sizes[: len(part)] += part
    stats["cluster_sizes"] = {str(k): int(v) for k, v in enumerate(sizes) if v}
    stats["components"] = sum(k for k, _, _ in written)
    stats["documents_in_components"] = sum(n for _, n, _ in written)
    files = [f for _, _, group_files in written for f in group_files]
    return dict(zip(decisions, files, strict=True))


@ray.remote(max_retries=TASK_RETRIES)
def _route_labels(group_index, n_groups, labels, out: Outbox):
    node = labels.column("node").to_numpy()
    return as_returns(out.send(split(labels, file_of(group_index, node), n_groups)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _member_keys(group: StagedGroup, id_column, keep, compared, partitions, pieces, out: Outbox):
    labels = receive(pieces)
    # A star's centre is listed by every partition holding one of its edges.
    nodes, first = np.unique(labels.column("node").to_numpy(), return_index=True)
    label = labels.column("label").to_numpy()[first]
    key_columns = [name for name, _ in keep if name != "id"]
    wanted = dict.fromkeys([id_column, col.EXACT_HI, col.MINHASH, *key_columns, *compared])
    table = group.read_kept(list(wanted))
    rows = np.searchsorted(table.column(col.UID).to_numpy(), nodes)
    members = table.take(pa.array(rows)).append_column("label", pa.array(label))
    # Ids are compared in their own type (numbers as numbers), reported as strings.
    typed = members.column(id_column)
    members = members.drop_columns([id_column]).append_column(ID_KEY, typed)
    members = members.append_column("id", pc.cast(typed, pa.string()))
    dest = partition_of(members.column("label").to_numpy(), partitions)
    return as_returns(out.send(split(members, dest, partitions)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _choose_keepers(group_index, n_groups, keep, cfg, location, checks, check_paths, pieces,
                    out: Outbox):  # fmt: skip
    """Per cluster, the first member by the keep rule survives; rows a
    cluster check rejects are set aside first (a cluster may then keep none),
    and each check's file for this partition is written."""
    members = receive(pieces)
    keys = [(ID_KEY if name == "id" else name, order) for name, order in keep]
    members = members.sort_by([("label", "ascending"), *keys, (col.UID, "ascending")])
    n = members.num_rows
    label = members.column("label").to_numpy()
    first = np.r_[True, label[1:] != label[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, n])
    excluded = np.zeros(n, dtype=bool)
    check_rule = np.full(n, None, dtype=object)
    for check, path in zip(checks, check_paths):
        verdict = check.resolve(members, cfg)
        check_rule[verdict.excluded & ~excluded] = verdict.rule  # the first check's rule
        excluded |= verdict.excluded
        pq.write_table(verdict.table, path, filesystem=location.arrow_fs)
    position = np.arange(n)
    candidates = np.where(excluded, n, position)
    best = np.minimum.reduceat(candidates, starts) if n else np.zeros(0, np.int64)
    has_keeper = np.repeat(best < n, sizes)
    keeper = np.where(has_keeper, np.repeat(best, sizes), np.repeat(starts, sizes))
    kept = has_keeper & (position == keeper)
    ids = members.column("id")
    exact = members.column(col.EXACT_HI).to_numpy()
    same_text = exact == exact[keeper]
    rule = np.where(same_text, "exact_duplicate", "near_duplicate").astype(object)
    rule[excluded] = check_rule[excluded]
    rule[kept] = None
    decisions = pa.table(
        {
            col.UID: members.column(col.UID),
            "id": ids,
            "cluster_id": ids.take(pa.array(keeper)),
            "kept": pa.array(kept),
            "rule": pa.array(rule.tolist(), pa.string()),
            "similarity": pa.array(similarity_to(members.column(col.MINHASH), keeper)),
        },
        schema=DECISION_SCHEMA,
    )
    uid = decisions.column(col.UID).to_numpy()
    sent = out.send(split(decisions, file_of(group_index, uid), n_groups))
    return as_returns([*sent, np.bincount(sizes) if n else np.zeros(0, np.int64)])


def similarity_to(signatures: pa.ChunkedArray | pa.Array, keeper: np.ndarray) -> np.ndarray:
    """Each row's MinHash agreement with the row at `keeper` (its kept
    member): the share of equal slots, an estimate of their Jaccard
    similarity (the audit command checks it against the texts)."""
    if isinstance(signatures, pa.ChunkedArray):
        signatures = signatures.combine_chunks()
    n = len(signatures)
    if n == 0:
        return np.zeros(0, np.float32)
    flat = signatures.flatten().to_numpy().reshape(n, -1)
    return (flat == flat[keeper]).mean(axis=1).astype(np.float32)


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _write_decisions(location, paths, staged_index, first, pieces):
    """Persist the decisions of a group's staged files, one file each (`paths`,
    staged files first, first + 1, ...); (survivors, members, (rows, bytes)
    of each file)."""
    decisions = receive(pieces).cast(DECISION_SCHEMA).sort_by(col.UID)
    owner = file_of(staged_index, decisions.column(col.UID).to_numpy()) - first
    parts = list(zip(paths, split(decisions, owner, len(paths))))
    files = in_threads(lambda pair: put_parquet(location, *pair), parts)
    return int(pc.sum(decisions.column("kept")).as_py() or 0), decisions.num_rows, files


def apply_decisions(
    table: pa.Table, decisions: pa.Table, remove: bool = True,
    checks: tuple[type[ClusterCheck], ...] = (),
) -> pa.Table:  # fmt: skip
    """Mark the removed duplicates of a staged block: stage "dedup", rule
    exact_duplicate / near_duplicate, reason = the kept document's id (unless
    `remove` is off); and rows a cluster check rejected: its stage, rule and
    reason. Every row gets its cluster (col.CLUSTER) and its similarity to
    the kept member (col.SIMILARITY, for the report)."""
    if decisions.num_rows == 0 or table.num_rows == 0:
        table = table.append_column(col.CLUSTER, pa.nulls(table.num_rows, pa.string()))
        return table.append_column(col.SIMILARITY, pa.nulls(table.num_rows, pa.float32()))
    pos, found = col.decided_rows(table, decisions)
    cluster = decisions.column("cluster_id").take(pa.array(pos))
    table = table.append_column(
        col.CLUSTER, pc.if_else(pa.array(found), cluster, pa.scalar(None, pa.string()))
    )
    similarity = decisions.column("similarity").take(pa.array(pos))
    table = table.append_column(
        col.SIMILARITY, pc.if_else(pa.array(found), similarity, pa.scalar(None, pa.float32()))
    )
    removed = found & ~decisions.column("kept").to_numpy(zero_copy_only=False)[pos]
    if not removed.any():
        return table
    take = pa.array(pos)
    rule, reason = decisions.column("rule").take(take), decisions.column("cluster_id").take(take)
    checked = [
        (check, removed & pc.is_in(rule, pa.array(check.rules)).to_numpy(zero_copy_only=False))
        for check in checks
    ]
    by_checks = np.logical_or.reduce([rows for _, rows in checked] + [np.zeros_like(removed)])
    if remove:
        table = col.mark_rejected(table, removed & ~by_checks, "dedup", rule, reason)
    for check, rows in checked:
        if rows.any():
            table = col.mark_rejected(table, rows, check.stage, rule, check.reason(rule, reason))
    return table
