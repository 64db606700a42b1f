"""Global exact and near-duplicate removal on Ray: the orchestration layer.

Works on the staged, annotated shards, whose kept rows carry `__dds_uid`
(global document number, in input order; each staged file holds an increasing
range of uids), the exact-text hash and the MinHash signature. Every step is a
set of Ray tasks over hash partitions or over groups of consecutive staged
files (at most GROUPS_PER_PARTITION per partition, so the objects passed
between steps grow with the partitions, not with the files: the verify hop
sends a piece from every group to every group); the driver only sees
per-file metadata and counts.

  scan      per file group: exact keys and LSH band keys, hash-partitioned
  buckets   per partition: exact edges, candidate pairs from band buckets
  verify    two hops over the groups holding each side's signature: keep pairs
            whose signatures agree on >= verify_threshold of their values
  graph     connected components (large-star / small-star, components.py)
  keep      per component, the best document by the keep rule survives
  route     decisions go back to the staged file of each document

Results do not depend on the number of partitions, workers or input blocks:
uids follow input order, labels are component minima, and ties are broken by id.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import in_threads
from dedupe_at_scale.kernels.hashing import MULTIPLIER
from dedupe_at_scale.stages.minhash import EMPTY, band_keys
from dedupe_at_scale.steps import consistency
from dedupe_at_scale.steps.base import (
    GROUPS_PER_PARTITION,
    StagedGroup,
    StagedView,
    decision_paths,
    group_files,
)
from dedupe_at_scale.steps.dedup.components import edge_checksum, large_star, small_star
from dedupe_at_scale.steps.dedup.lsh import band_candidates, exact_edges, unique_pairs
from dedupe_at_scale.steps.exchange import (
    Exchange,
    Outbox,
    mailbox_count,
    receive,
    run_with_mailboxes,
)
from dedupe_at_scale.steps.tasks import TASK_RETRIES, Returns, as_returns, call, split, submit

MAX_ROUNDS = 64
ID_KEY = "__dds_id_key"
DECISION_SCHEMA = pa.schema(
    [
        (col.UID, pa.int64()),
        ("id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept", pa.bool_()),
        ("rule", pa.string()),
    ]
)


@dataclass
class DedupOutcome:
    decisions: list[str]  # per staged file: path of its DECISION_SCHEMA table
    stats: dict[str, Any] = field(default_factory=dict)


def run_dedup(view: StagedView, bands: int, rows: int, keep: list[tuple[str, str]]) -> DedupOutcome:
    """Dedup over the kept rows of every staged file (earlier steps'
    decisions applied); `keep` orders the members of a cluster."""
    partitions = view.partitions
    groups = group_files(view.files, GROUPS_PER_PARTITION * partitions)
    largest_hop = len(groups) * max(partitions, len(groups))
    boxes = mailbox_count(view.cfg.dedup.exchange, largest_hop, max(partitions, len(groups)))
    return run_with_mailboxes("dedup", boxes, lambda ex: _run(ex, view, groups, bands, rows, keep))


def _run(ex: Exchange, view: StagedView, groups: list[StagedGroup], bands: int, rows: int,
         keep: list[tuple[str, str]]) -> DedupOutcome:  # fmt: skip
    cfg, partitions = view.cfg.dedup, view.partitions
    n_groups = len(groups)
    timings: dict[str, float] = {}
    stats: dict[str, Any] = {
        "bands": bands, "rows": rows, "partitions": partitions, "file_groups": n_groups,
        "exchange": "mailboxes" if ex.mailboxes else "objects",
        "mailboxes": len(ex.mailboxes or ()),
    }  # fmt: skip
    if cfg.near and cfg.verify:
        stats["verify_min_agreement"] = cfg.min_agreement()

    started = time.time()
    exact_hop, band_hop = ex.hop(partitions), ex.hop(partitions)
    returns = _scan_returns(exact_hop.returns, band_hop.returns)
    scans = [
        submit(_scan, returns, g, cfg, bands, rows, partitions,
               exact_hop.outbox(i), band_hop.outbox(i))
        for i, g in enumerate(groups)
    ]  # fmt: skip
    staged_index, group_index = _file_indexes([s["uid_ranges"] for s in scans])
    exact_in = exact_hop.inboxes([s["exact"] for s in scans])
    band_in = band_hop.inboxes([s["bands"] for s in scans])
    timings["scan"] = time.time() - started

    started = time.time()
    pair_hop = ex.hop(n_groups)
    returns = _bucket_returns(pair_hop.returns)
    buckets = [
        submit(_buckets, returns, cfg, group_index, n_groups, exact_in[p], band_in[p],
               pair_hop.outbox(p))
        for p in range(partitions)
    ]  # fmt: skip
    edges = [b["exact_edges"] for b in buckets]
    candidates = pair_hop.inboxes([b["candidates"] for b in buckets])
    # Wait here so that the step's time is its own, not counted under verify.
    ray.wait(edges, num_returns=len(edges), fetch_local=False)
    exact_hop.release(), band_hop.release()
    timings["buckets"] = time.time() - started

    started = time.time()
    if cfg.near and cfg.verify:
        sig_hop = ex.hop(n_groups)
        hop = [
            call(_attach_signatures, sig_hop.returns, groups[g], group_index, n_groups,
                 candidates[g], sig_hop.outbox(g))
            for g in range(n_groups)
        ]  # fmt: skip
        signed = sig_hop.inboxes(hop)
        pair_hop.release()
        verified = [
            call(_verify, 1, groups[g], cfg.min_agreement(), signed[g])[0] for g in range(n_groups)
        ]
    else:
        sig_hop = pair_hop
        verified = [call(_concat_pairs, 1, candidates[g])[0] for g in range(n_groups)]
    counts = ray.get([_count.remote(r) for r in verified + edges])
    sig_hop.release()
    # Pairs from the band buckets before verification: what verify's work grows with.
    stats["candidate_pairs"] = sum(ray.get([b["candidate_count"] for b in buckets]))
    stats["near_edges"] = sum(counts[:n_groups])
    stats["exact_edges"] = sum(counts[n_groups:])
    timings["verify"] = time.time() - started

    started = time.time()
    labels, rounds = _components(ex, edges + verified, partitions)
    stats["graph_rounds"] = rounds
    timings["graph"] = time.time() - started

    started = time.time()
    label_hop = ex.hop(n_groups)
    by_group = label_hop.inboxes(
        [
            call(_route_labels, label_hop.returns, group_index, n_groups, lab, label_hop.outbox(p))
            for p, lab in enumerate(labels)
        ]
    )
    id_column = view.cfg.input.id_column
    compared = consistency.member_columns(view.cfg)
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
    checks = consistency.applies(view.cfg)
    if checks:  # an interrupted run's files, perhaps for other partitions
        fs = view.location.fs
        for path in fs.glob(posixpath.join(view.decisions_dir, consistency.FILE_PREFIX + "*")):
            fs.rm(path)
    chosen_hop = ex.hop(n_groups)
    chosen = [
        call(
            _choose_keepers, chosen_hop.returns + 1, group_index, n_groups, keep, view.cfg,
            view.location, consistency.conflicts_path(view.decisions_dir, p) if checks else None,
            members[p], chosen_hop.outbox(p),
        )
        for p in range(partitions)
    ]  # fmt: skip
    by_file = chosen_hop.inboxes([c[:-1] for c in chosen])
    member_hop.release()
    first = np.cumsum([0] + [len(g.files) for g in groups])
    kept_counts = ray.get(
        [
            _write_decisions.remote(
                view.location, decisions[first[g] : first[g + 1]], staged_index, first[g],
                by_file[g],
            )
            for g in range(n_groups)
        ]
    )  # fmt: skip
    # Members per cluster: {size: clusters}, for the report (per-partition bincounts).
    parts = ray.get([c[-1] for c in chosen])
    sizes = np.zeros(max((len(p) for p in parts), default=0), np.int64)
    for part in parts:
        sizes[: len(part)] += part
    stats["cluster_sizes"] = {str(k): int(v) for k, v in enumerate(sizes) if v}
    stats["components"] = sum(k for k, _ in kept_counts)
    stats["documents_in_components"] = sum(n for _, n in kept_counts)
    timings["keep"] = time.time() - started
    stats["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return DedupOutcome(decisions=decisions, stats=stats)


def _scan_returns(exact: int, bands: int) -> Returns:
    return Returns((("uid_ranges", None), ("exact", exact), ("bands", bands)))


def _bucket_returns(candidates: int) -> Returns:
    return Returns((("exact_edges", None), ("candidate_count", None), ("candidates", candidates)))


# Helpers run on the driver ------------------------------------------------------


class FileIndex:
    """Which staged file (or group of files) holds a uid: files hold
    increasing, disjoint uid ranges (per-file metadata, not per document)."""

    def __init__(self, starts: np.ndarray, files: np.ndarray):
        self.starts = starts
        self.files = files


def _file_indexes(range_refs: list) -> tuple[FileIndex, FileIndex]:
    """Which staged file, and which group, holds a uid; from each group's
    per-file uid ranges."""
    ranges = [(lo, hi, g) for g, part in enumerate(ray.get(range_refs)) for lo, hi in part]
    nonempty = [(lo, f, g) for f, (lo, hi, g) in enumerate(ranges) if hi >= lo]
    starts = np.array([lo for lo, _, _ in nonempty], dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    files = np.array([f for _, f, _ in nonempty], dtype=np.int64)[order]
    groups = np.array([g for _, _, g in nonempty], dtype=np.int64)[order]
    return FileIndex(starts[order], files), FileIndex(starts[order], groups)


def _file_of(index: FileIndex, uids: np.ndarray) -> np.ndarray:
    if len(uids) == 0:
        return np.zeros(0, np.int64)
    return index.files[np.searchsorted(index.starts, uids, side="right") - 1]


def _components(ex: Exchange, edge_refs: list, partitions: int) -> tuple[list, int]:
    """Large-star / small-star rounds until the edge set stops changing."""
    parts = edge_refs
    previous = None
    for round_ in range(1, MAX_ROUNDS + 1):
        both = ex.hop(partitions)
        routed = both.inboxes(
            [call(_route_both_ways, both.returns, p, partitions, both.outbox(i))
             for i, p in enumerate(parts)]
        )  # fmt: skip
        large = [call(_large_star, 1, routed[p])[0] for p in range(partitions)]
        by_larger = ex.hop(partitions)
        routed = by_larger.inboxes(
            [call(_route_by_larger, by_larger.returns, p, partitions, by_larger.outbox(i))
             for i, p in enumerate(large)]
        )  # fmt: skip
        both.release()
        parts = [call(_small_star, 1, routed[p])[0] for p in range(partitions)]
        sums = ray.get([_checksum.remote(p) for p in parts])
        by_larger.release()
        current = (sum(c for c, _ in sums), sum(s for _, s in sums) % 2**64)
        if current == previous:
            return [call(_star_labels, 1, p)[0] for p in parts], round_
        previous = current
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


# Tasks ---------------------------------------------------------------------------


def _ends(pairs: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return pairs.column("hi").to_numpy(), pairs.column("lo").to_numpy()


def _pairs_table(hi: np.ndarray, lo: np.ndarray) -> pa.Table:
    return pa.table({"hi": pa.array(hi, pa.int64()), "lo": pa.array(lo, pa.int64())})


def _signature_matrix(table: pa.Table) -> np.ndarray:
    sig = table.column(col.MINHASH).combine_chunks()
    width = sig.type.list_size
    return sig.values.to_numpy().reshape(-1, width) if len(sig) else np.zeros((0, width), np.uint32)


def _uid_range(table: pa.Table) -> tuple[int, int]:
    uids = table.column(col.UID).to_numpy()
    return (int(uids.min()), int(uids.max())) if len(uids) else (0, -1)


@ray.remote(max_retries=TASK_RETRIES)
def _scan(group: StagedGroup, cfg, bands, rows, partitions, exact_out: Outbox, band_out: Outbox):
    tables = group.read_each([col.EXACT_HI, col.EXACT_LO, col.MINHASH])
    # The ranges cover rejected rows too: they map every uid of each file.
    uid_ranges = [_uid_range(t) for t in tables]
    table = col.kept_rows(pa.concat_tables(tables))
    uid = table.column(col.UID).to_numpy()
    hi = table.column(col.EXACT_HI).to_numpy()
    lo = table.column(col.EXACT_LO).to_numpy()
    exact = pa.table({"hi": hi, "lo": lo, "uid": uid}).slice(0, len(uid) if cfg.exact else 0)
    exact_parts = split(
        exact, (hi[: exact.num_rows] % np.uint64(partitions)).astype(np.int64), partitions
    )
    if cfg.near:
        sigs = _signature_matrix(table)
        has_tokens = ~(sigs == EMPTY).all(axis=1)
        keys = band_keys(sigs[has_tokens], bands, rows)
        band = pa.table(
            {
                "key": keys.reshape(-1),
                "uid": np.repeat(uid[has_tokens], bands),
                "exact": np.repeat(hi[has_tokens], bands),
            }
        )
        dest = (keys.reshape(-1) % np.uint64(partitions)).astype(np.int64)
    else:
        band = pa.table({"key": pa.array([], pa.uint64()), "uid": pa.array([], pa.int64()),
                         "exact": pa.array([], pa.uint64())})  # fmt: skip
        dest = np.zeros(0, np.int64)
    exact_sent, band_sent = (
        exact_out.send(exact_parts),
        band_out.send(split(band, dest, partitions)),
    )
    return _scan_returns(len(exact_sent), len(band_sent)).pack(
        uid_ranges=uid_ranges, exact=exact_sent, bands=band_sent
    )


@ray.remote(max_retries=TASK_RETRIES)
def _buckets(cfg, group_index, n_groups, exact_pieces, band_pieces, out: Outbox):
    exact = receive(exact_pieces)
    hi = exact.column("hi").to_numpy()
    lo = exact.column("lo").to_numpy()
    uid = exact.column("uid").to_numpy()
    # Group on both halves of the 128-bit text hash.
    key = hi ^ (lo * MULTIPLIER)
    e_hi, e_lo = exact_edges(key, uid)
    band = receive(band_pieces)
    a, b = band_candidates(
        band.column("key").to_numpy(), band.column("uid").to_numpy(),
        band.column("exact").to_numpy(), cfg.all_pairs_limit,
    )  # fmt: skip
    sent = out.send(split(_pairs_table(a, b), _file_of(group_index, a), n_groups))
    return _bucket_returns(len(sent)).pack(
        exact_edges=_pairs_table(*unique_pairs(e_hi, e_lo)), candidate_count=len(a),
        candidates=sent,
    )  # fmt: skip


@ray.remote(max_retries=TASK_RETRIES)
def _attach_signatures(group: StagedGroup, group_index, n_groups, pieces, outbox: Outbox):
    pairs = receive(pieces)
    hi, lo = unique_pairs(*_ends(pairs))
    table = group.read_kept([col.MINHASH])
    uids = table.column(col.UID).to_numpy()
    sigs = _signature_matrix(table)
    sig_hi = sigs[np.searchsorted(uids, hi)] if len(hi) else np.zeros((0, sigs.shape[1]), np.uint32)
    signed = pa.table(
        {
            "hi": pa.array(hi, pa.int64()),
            "lo": pa.array(lo, pa.int64()),
            "sig": pa.FixedSizeListArray.from_arrays(pa.array(sig_hi.reshape(-1)), sigs.shape[1]),
        }
    )
    return as_returns(outbox.send(split(signed, _file_of(group_index, lo), n_groups)))


@ray.remote(max_retries=TASK_RETRIES)
def _verify(group: StagedGroup, threshold, pieces):
    pairs = receive(pieces)
    hi = pairs.column("hi").to_numpy()
    lo = pairs.column("lo").to_numpy()
    if len(hi) == 0:
        return _pairs_table(hi, lo)
    table = group.read_kept([col.MINHASH])
    sigs = _signature_matrix(table)
    sig_lo = sigs[np.searchsorted(table.column(col.UID).to_numpy(), lo)]
    sig_hi = pairs.column("sig").combine_chunks().values.to_numpy().reshape(sig_lo.shape)
    agree = (sig_hi == sig_lo).mean(axis=1) >= threshold
    return _pairs_table(hi[agree], lo[agree])


@ray.remote(max_retries=TASK_RETRIES)
def _concat_pairs(pieces):
    pairs = receive(pieces)
    return _pairs_table(*unique_pairs(*_ends(pairs)))


@ray.remote(max_retries=TASK_RETRIES)
def _count(table):
    return table.num_rows


def _route(hi: np.ndarray, lo: np.ndarray, partitions: int) -> list[pa.Table]:
    return split(_pairs_table(hi, lo), _partition_of(hi, partitions), partitions)


def _partition_of(x: np.ndarray, partitions: int) -> np.ndarray:
    """Hash partition of integer keys (uids, labels)."""
    with np.errstate(over="ignore"):
        h = x.astype(np.uint64) * MULTIPLIER
        h ^= h >> np.uint64(31)
    return (h % np.uint64(partitions)).astype(np.int64)


@ray.remote(max_retries=TASK_RETRIES)
def _route_both_ways(edges, partitions, out: Outbox):
    hi, lo = _ends(edges)
    return as_returns(out.send(_route(np.r_[hi, lo], np.r_[lo, hi], partitions)))


@ray.remote(max_retries=TASK_RETRIES)
def _large_star(pieces):
    table = receive(pieces)
    return _pairs_table(*large_star(*_ends(table)))


@ray.remote(max_retries=TASK_RETRIES)
def _route_by_larger(edges, partitions, out: Outbox):
    return as_returns(out.send(_route(*_ends(edges), partitions)))


@ray.remote(max_retries=TASK_RETRIES)
def _small_star(pieces):
    table = receive(pieces)
    return _pairs_table(*small_star(*_ends(table)))


@ray.remote(max_retries=TASK_RETRIES)
def _checksum(edges):
    return edge_checksum(*_ends(edges))


@ray.remote(max_retries=TASK_RETRIES)
def _star_labels(edges):
    """(node, label) for every node of the converged stars in this partition."""
    hi, lo = _ends(edges)
    centres = np.unique(lo)
    return pa.table({"node": np.r_[hi, centres], "label": np.r_[lo, centres]})


@ray.remote(max_retries=TASK_RETRIES)
def _route_labels(group_index, n_groups, labels, out: Outbox):
    node = labels.column("node").to_numpy()
    return as_returns(out.send(split(labels, _file_of(group_index, node), n_groups)))


@ray.remote(max_retries=TASK_RETRIES)
def _member_keys(group: StagedGroup, id_column, keep, compared, partitions, pieces, out: Outbox):
    labels = receive(pieces)
    # A star's centre is listed by every partition holding one of its edges.
    nodes, first = np.unique(labels.column("node").to_numpy(), return_index=True)
    label = labels.column("label").to_numpy()[first]
    key_columns = [name for name, _ in keep if name != "id"]
    wanted = dict.fromkeys([id_column, col.EXACT_HI, *key_columns, *compared])
    table = group.read_kept(list(wanted))
    rows = np.searchsorted(table.column(col.UID).to_numpy(), nodes)
    members = table.take(pa.array(rows)).append_column("label", pa.array(label))
    # Ids are compared in their own type (numbers as numbers), reported as strings.
    typed = members.column(id_column)
    members = members.drop_columns([id_column]).append_column(ID_KEY, typed)
    members = members.append_column("id", pc.cast(typed, pa.string()))
    dest = _partition_of(members.column("label").to_numpy(), partitions)
    return as_returns(out.send(split(members, dest, partitions)))


@ray.remote(max_retries=TASK_RETRIES)
def _choose_keepers(group_index, n_groups, keep, cfg, location, conflicts_path, pieces,
                    out: Outbox):  # fmt: skip
    """Per cluster, the first member by the keep rule survives; with
    consistency checks, rows its action rejects are set aside first (a
    cluster may then keep none)."""
    members = receive(pieces)
    keys = [(ID_KEY if name == "id" else name, order) for name, order in keep]
    members = members.sort_by([("label", "ascending"), *keys, (col.UID, "ascending")])
    n = members.num_rows
    label = members.column("label").to_numpy()
    first = np.r_[True, label[1:] != label[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, n])
    excluded = np.zeros(n, dtype=bool)
    if conflicts_path is not None:
        resolution = consistency.resolve(members, cfg)
        excluded = resolution.excluded
        consistency.write_conflicts(location, conflicts_path, resolution.conflicts)
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
    if conflicts_path is not None:
        rule[excluded] = resolution.rule
    rule[kept] = None
    decisions = pa.table(
        {
            col.UID: members.column(col.UID),
            "id": ids,
            "cluster_id": ids.take(pa.array(keeper)),
            "kept": pa.array(kept),
            "rule": pa.array(rule.tolist(), pa.string()),
        },
        schema=DECISION_SCHEMA,
    )
    uid = decisions.column(col.UID).to_numpy()
    sent = out.send(split(decisions, _file_of(group_index, uid), n_groups))
    return as_returns([*sent, np.bincount(sizes) if n else np.zeros(0, np.int64)])


@ray.remote(max_retries=TASK_RETRIES)
def _write_decisions(location, paths, staged_index, first, pieces):
    """Persist the decisions of a group's staged files, one file each (`paths`,
    staged files first, first + 1, ...); (survivors, members)."""
    decisions = receive(pieces).cast(DECISION_SCHEMA).sort_by(col.UID)
    owner = _file_of(staged_index, decisions.column(col.UID).to_numpy()) - first
    parts = zip(paths, split(decisions, owner, len(paths)))
    in_threads(
        lambda pair: pq.write_table(pair[1], pair[0], filesystem=location.arrow_fs), list(parts)
    )
    return int(pc.sum(decisions.column("kept")).as_py() or 0), decisions.num_rows


def apply_decisions(table: pa.Table, decisions: pa.Table, remove: bool = True) -> pa.Table:
    """Mark the removed duplicates of a staged block: stage "dedup", rule
    exact_duplicate / near_duplicate, reason = the kept document's id (unless
    `remove` is off); and rows consistency rejected: stage "consistency",
    reason naming the cluster. Every row gets its cluster (col.CLUSTER)."""
    if decisions.num_rows == 0 or table.num_rows == 0:
        return table.append_column(col.CLUSTER, pa.nulls(table.num_rows, pa.string()))
    pos, found = col.decided_rows(table, decisions)
    cluster = decisions.column("cluster_id").take(pa.array(pos))
    table = table.append_column(
        col.CLUSTER, pc.if_else(pa.array(found), cluster, pa.scalar(None, pa.string()))
    )
    removed = found & ~decisions.column("kept").to_numpy(zero_copy_only=False)[pos]
    if not removed.any():
        return table
    take = pa.array(pos)
    rule, reason = decisions.column("rule").take(take), decisions.column("cluster_id").take(take)
    conflict = pc.is_in(rule, pa.array(list(consistency.RULES.values()))).to_numpy(
        zero_copy_only=False
    )
    if remove:
        table = col.mark_rejected(table, removed & ~conflict, "dedup", rule, reason)
    if (removed & conflict).any():
        why = pc.binary_join_element_wise(rule, ": contradicts rows of cluster ", reason, "")
        why = pc.binary_join_element_wise(why, " (see conflicts/)", "")
        table = col.mark_rejected(table, removed & conflict, "consistency", rule, why)
    return table
