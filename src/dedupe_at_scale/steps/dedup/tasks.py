"""Global exact and near-duplicate removal on Ray: the orchestration, and
the buckets and verify sub-steps (scan is in scan.py).

Works on the staged, annotated shards, whose kept rows carry `__dds_uid`
(global document number, in input order; each staged file holds an
increasing range of uids), the exact-text hash and the MinHash signature.
SUB_STEPS lists the sub-steps in order; each is a function of a DedupRun
(what the ones before it left) that runs Ray tasks over hash partitions or
over groups of consecutive staged files (base.group_count: at most four per
partition, so the objects passed between sub-steps grow with the
partitions, not with the files: the verify hop sends a piece from every
group to every group); the driver only sees per-file metadata and counts.

  scan      per file group: exact keys and LSH band keys, hash-partitioned
  buckets   per partition: exact edges, candidate pairs from band buckets
  verify    two hops over the groups holding each side's signature: keep pairs
            whose signatures agree on >= verify_threshold of their values
  graph     connected components (large-star / small-star, components.py),
            over a partition per ten of the others past 160 (graph_partitions)
  keep      per component, the best document by the keep rule survives, and
            decisions go back to the staged file of each document (keep.py)

Results do not depend on the number of partitions, workers or input blocks:
uids follow input order, labels are component minima, and ties are broken by id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.kernels.hashing import MULTIPLIER
from dedupe_at_scale.steps.base import (
    StagedGroup,
    StagedView,
    group_count,
    group_files,
)
from dedupe_at_scale.steps.dedup.components import (
    components_of_routed,
    edge_returns,
    edges_sent,
    graph_partitions,
    send_edges,
)
from dedupe_at_scale.steps.dedup.edges import (
    ends,
    file_of,
    first_of_each,
    pairs_table,
)
from dedupe_at_scale.steps.dedup.keep import choose_keepers
from dedupe_at_scale.steps.dedup.lsh import agreeing, band_candidates, exact_edges, unique_pairs
from dedupe_at_scale.steps.dedup.scan import scan, signature_matrix
from dedupe_at_scale.steps.exchange import (
    Exchange,
    Hop,
    Outbox,
    mailbox_counts,
    receive,
    run_with_mailboxes,
)
from dedupe_at_scale.steps.tasks import (
    TASK_RETRIES,
    Returns,
    split,
    submit,
    takes_pieces,
)

if TYPE_CHECKING:
    from dedupe_at_scale.steps.dedup.config import DedupConfig


@dataclass
class DedupOutcome:
    # per staged file, in order: path of its DECISION_SCHEMA table -> (rows, bytes)
    decisions: dict[str, tuple[int, int]]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class DedupRun:
    """What the sub-steps hand each other: object refs (or mailbox acks) and
    small per-file metadata, never the rows. Each sub-step fills its fields
    from those of the ones before it."""

    ex: Exchange
    view: StagedView
    groups: list[StagedGroup]
    bands: int
    rows: int
    keep: list[tuple[str, str]]
    stats: dict[str, Any] = field(default_factory=dict)
    # scan: which file and group hold each uid (FileIndex refs, edges.file_indexes);
    # exact and band keys per partition
    indexes: tuple[ray.ObjectRef, ray.ObjectRef] | None = None
    exact_in: list = field(default_factory=list)
    band_in: list = field(default_factory=list)
    # buckets: the graph's first hop, which buckets and verify send their
    # edges into (both ways); exact edges sent, per partition; candidate
    # pairs per group
    graph_hop: Hop | None = None
    edges: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    # verify: the near edges that passed, sent, per group
    verified: list = field(default_factory=list)
    # graph: (node, label) per partition, labels being component minima
    labels: list = field(default_factory=list)
    # keep: a decision file per staged file, with its (rows, bytes)
    decisions: dict[str, tuple[int, int]] = field(default_factory=dict)
    # hops still holding pieces a later sub-step reads
    open_hops: list[Hop] = field(default_factory=list)

    @property
    def cfg(self) -> DedupConfig:
        return self.view.cfg.dedup

    @property
    def partitions(self) -> int:
        return self.view.partitions

    @property
    def graph_partitions(self) -> int:
        return graph_partitions(self.partitions)

    def release(self) -> None:
        for hop in self.open_hops:
            hop.release()
        self.open_hops = []


def run_dedup(view: StagedView, bands: int, rows: int, keep: list[tuple[str, str]]) -> DedupOutcome:
    """Dedup over the kept rows of every staged file (earlier steps'
    decisions applied); `keep` orders the members of a cluster."""
    partitions = view.partitions
    groups = group_files(view.files, group_count(partitions))
    destinations = max(partitions, len(groups))
    boxes, on_demand = mailbox_counts(
        view.cfg.dedup.exchange, len(groups) * destinations, destinations
    )
    body = lambda ex: run_sub_steps(DedupRun(ex, view, groups, bands, rows, keep))  # noqa: E731
    return run_with_mailboxes("dedup", boxes, body, on_demand)


def run_sub_steps(run: DedupRun, until: str | None = None) -> DedupOutcome:
    """The sub-steps in order (through `until`, by name), each timed."""
    run.stats.update({
        "bands": run.bands, "rows": run.rows, "partitions": run.partitions,
        "graph_partitions": run.graph_partitions,
        "file_groups": len(run.groups), "exchange": "mailboxes" if run.ex.mailboxes else "objects",
    })  # fmt: skip
    if run.cfg.near and run.cfg.verify:
        run.stats["verify_min_agreement"] = run.cfg.min_agreement()
    timings: dict[str, float] = {}
    for name, sub_step in SUB_STEPS:
        started = time.time()
        sub_step(run)
        timings[name] = time.time() - started
        if run.stats["exchange"] == "objects" and run.ex.mailboxes:  # started on demand
            run.stats["exchange"] = f"objects, mailboxes from {name}"
        if name == until:
            break
    run.stats["mailboxes"] = len(run.ex.mailboxes or ())
    run.stats["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return DedupOutcome(decisions=run.decisions, stats=run.stats)


def buckets(run: DedupRun) -> None:
    """Per partition: exact edges, and candidate pairs from the band buckets
    sent to the group holding each pair's first member."""
    n_groups, group_index = len(run.groups), run.indexes[1]
    pair_hop = run.ex.hop(n_groups)
    run.graph_hop = graph_hop = run.ex.hop(run.graph_partitions)
    returns = _bucket_returns(pair_hop.returns, graph_hop.returns)
    tasks = [
        submit(_buckets, returns, run.cfg, group_index, n_groups, run.exact_in[p],
               run.band_in[p], pair_hop.outbox(p), run.graph_partitions, graph_hop.outbox(p))
        for p in range(run.partitions)
    ]  # fmt: skip
    run.edges = [b["exact_edges"] for b in tasks]
    run.candidates = pair_hop.inboxes([b["candidates"] for b in tasks])
    # Waiting for the counts keeps the sub-step's time its own, not verify's.
    counts = ray.get([b["counts"] for b in tasks])
    run.release()
    run.open_hops = [pair_hop]
    # Pairs from the band buckets before verification: what verify's work grows with.
    run.stats["candidate_pairs"] = sum(c for c, _ in counts)
    run.stats["exact_edges"] = sum(e for _, e in counts)


def verify(run: DedupRun) -> None:
    """Two hops over the groups holding each side's signature: keep the pairs
    whose signatures agree on >= dedup.verify_threshold of their values, and
    send them into the graph's first hop."""
    cfg, groups, n_groups, group_index = run.cfg, run.groups, len(run.groups), run.indexes[1]
    if cfg.near and cfg.verify:
        # At most: every candidate pair (16 bytes) carries a signature.
        sig_hop = run.ex.hop(n_groups, run.stats["candidate_pairs"] * (16 + 4 * cfg.num_perm))
        returns = _signature_returns(sig_hop.returns)
        hop = [
            submit(_attach_signatures, returns, groups[g], group_index, n_groups,
                   run.candidates[g], sig_hop.outbox(g))
            for g in range(n_groups)
        ]  # fmt: skip
        signed = sig_hop.inboxes([h["pairs"] for h in hop])
        # Signatures sent to other groups: what the hop's bytes grow with.
        run.stats["signatures_sent"] = sum(ray.get([h["signatures"] for h in hop]))
        run.release()
        run.open_hops = [sig_hop]
        work = [(_verify, groups[g], cfg.min_agreement(), signed[g]) for g in range(n_groups)]
    else:
        work = [(_concat_pairs, run.candidates[g]) for g in range(n_groups)]
    # The groups send into the graph's first hop after buckets' P senders.
    hop, first = run.graph_hop, run.partitions
    returns = edge_returns(hop.returns)
    verified = [
        submit(fn, returns, *args, run.graph_partitions, hop.outbox(first + g))
        for g, (fn, *args) in enumerate(work)
    ]
    run.verified = [v["edges"] for v in verified]
    run.stats["near_edges"] = sum(ray.get([v["count"] for v in verified]))
    run.release()


def graph(run: DedupRun) -> None:
    """Connected components of the exact and near edges (components.py)."""
    run.labels, run.stats["graph_rounds"] = components_of_routed(
        run.ex, run.graph_hop, run.edges + run.verified, run.graph_partitions
    )


def keep(run: DedupRun) -> None:
    """Per component, the first document by the keep rule survives; the
    decisions go back to the staged file of each document (keep.py)."""
    run.decisions = choose_keepers(
        run.ex, run.view, run.groups, run.indexes, run.keep, run.labels, run.stats
    )


# Dedup's sub-steps, in the order they run (docs/dedup.md).
SUB_STEPS: tuple[tuple[str, Callable[[DedupRun], None]], ...] = (
    ("scan", scan),
    ("buckets", buckets),
    ("verify", verify),
    ("graph", graph),
    ("keep", keep),
)


def _signature_returns(pairs: int) -> Returns:
    return Returns((("signatures", None), ("pairs", pairs)))


def _bucket_returns(candidates: int, edges: int) -> Returns:
    return Returns((("exact_edges", edges), ("counts", None), ("candidates", candidates)))


# Tasks ---------------------------------------------------------------------------


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _buckets(cfg, group_index, n_groups, exact_pieces, band_pieces, out: Outbox, partitions,
             edge_out: Outbox):  # fmt: skip
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
    sent = out.send(split(pairs_table(a, b), file_of(group_index, a), n_groups))
    edges = pairs_table(*unique_pairs(e_hi, e_lo))
    exact_sent = send_edges(edges, partitions, edge_out)
    return _bucket_returns(len(sent), len(exact_sent)).pack(
        exact_edges=exact_sent, counts=(len(a), edges.num_rows), candidates=sent
    )


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _attach_signatures(group: StagedGroup, group_index, n_groups, pieces, outbox: Outbox):
    """Sends each pair (hi, lo), hi being this group's, to lo's group, and
    hi's signature once per destination group, on the first of its pairs
    there (the others carry no bytes): a signature is 512 bytes, a pair 16,
    and a document often meets several of another group's."""
    pairs = receive(pieces)
    hi, lo = unique_pairs(*ends(pairs))
    table = group.read_kept([col.MINHASH])
    uids = table.column(col.UID).to_numpy()
    sigs = signature_matrix(table)
    dest = file_of(group_index, lo)
    carries = first_of_each(hi, dest)
    sig_hi = np.ascontiguousarray(sigs[np.searchsorted(uids, hi[carries])])
    # Bytes, not a list: Arrow takes binary rows (split) several times faster.
    offsets = np.zeros(len(hi) + 1, np.int64)
    np.cumsum(np.where(carries, sig_hi.shape[1] * sig_hi.itemsize, 0), out=offsets[1:])
    sig = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(hi), [None, pa.py_buffer(offsets), pa.py_buffer(sig_hi)]
    )
    signed = pa.table({"hi": pa.array(hi, pa.int64()), "lo": pa.array(lo, pa.int64()), "sig": sig})
    sent = outbox.send(split(signed, dest, n_groups))
    return _signature_returns(len(sent)).pack(signatures=int(carries.sum()), pairs=sent)


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _verify(group: StagedGroup, threshold, pieces, partitions, out: Outbox):
    pairs = receive(pieces)
    hi = pairs.column("hi").to_numpy()
    lo = pairs.column("lo").to_numpy()
    if len(hi) == 0:
        return edges_sent(pairs_table(hi, lo), partitions, out)
    table = group.read_kept([col.MINHASH])
    sigs = signature_matrix(table)
    lo_rows = np.searchsorted(table.column(col.UID).to_numpy(), lo)
    # Each hi's signature came once, on one of its pairs (_attach_signatures).
    sig = pairs.column("sig").combine_chunks()
    carried = pc.binary_length(sig).to_numpy() > 0
    carrier_hi = hi[carried]
    by_hi = np.argsort(carrier_hi, kind="stable")
    offsets = np.frombuffer(sig.buffers()[1], np.int64)[sig.offset : sig.offset + len(sig) + 1]
    carried_sigs = np.frombuffer(
        sig.buffers()[2], sigs.dtype, (offsets[-1] - offsets[0]) // sigs.itemsize, offsets[0]
    ).reshape(-1, sigs.shape[1])
    hi_rows = by_hi[np.searchsorted(carrier_hi[by_hi], hi)]
    agree = agreeing(carried_sigs, hi_rows, sigs, lo_rows, float(threshold))
    return edges_sent(pairs_table(hi[agree], lo[agree]), partitions, out)


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _concat_pairs(pieces, partitions, out: Outbox):
    pairs = receive(pieces)
    return edges_sent(pairs_table(*unique_pairs(*ends(pairs))), partitions, out)
