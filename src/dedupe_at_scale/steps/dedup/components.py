"""Connected components by the large-star / small-star algorithm.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014).
Each step needs only the edges of one node at a time, so it runs on hash
partitions of the edge list: `components_of_routed` drives the rounds as Ray
tasks, and the numpy functions below are each partition's work. Edges are undirected and kept as (larger, smaller). At
convergence every component is a star around its smallest node, which becomes
the component's label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale.kernels.hashing import MULTIPLIER
from dedupe_at_scale.steps.dedup.edges import ends, pairs_table, partition_of
from dedupe_at_scale.steps.dedup.lsh import unique_pairs
from dedupe_at_scale.steps.exchange import Exchange, Hop, Outbox, receive
from dedupe_at_scale.steps.tasks import (
    TASK_RETRIES,
    Returns,
    Split,
    as_returns,
    call,
    split,
    submit,
    takes_pieces,
)


def _grouped_min(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by key; return keys, values and per-row min of values in its group."""
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    starts = (
        np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    )
    group_min = np.repeat(values[starts], np.diff(np.r_[starts, len(keys)]))
    return keys, values, group_min


def large_star(node: np.ndarray, neighbour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input: both directions of every edge whose `node` hashes here.
    Links every larger neighbour of a node to the smallest of the node's
    neighbourhood (itself included)."""
    node, neighbour, group_min = _grouped_min(node, neighbour)
    smallest = np.minimum(group_min, node)
    larger = neighbour > node
    return unique_pairs(neighbour[larger], smallest[larger])


def small_star(node: np.ndarray, smaller: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input: edges (node, smaller neighbour) whose `node` hashes here.
    Links the node and its smaller neighbours to the smallest of them."""
    node, smaller, group_min = _grouped_min(node, smaller)
    members = np.r_[smaller, node]
    centre = np.r_[group_min, group_min]
    return unique_pairs(members, centre)


def edge_checksum(hi: np.ndarray, lo: np.ndarray) -> tuple[int, int]:
    """(count, order-independent hash) of an edge set, to detect convergence."""
    with np.errstate(over="ignore"):
        mixed = (hi.astype(np.uint64) * MULTIPLIER) ^ lo.astype(np.uint64)
        mixed = (mixed ^ (mixed >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
        return len(hi), int(mixed.sum(dtype=np.uint64))


def components_local(hi: np.ndarray, lo: np.ndarray) -> dict[int, int]:
    """Reference implementation in one process (union-find), for tests."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(hi.tolist(), lo.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


# The rounds as Ray tasks over hash partitions of the edges ----------------------


MAX_ROUNDS = 64
# The graph holds only the documents that have a duplicate, by an edge or a
# few each (0.1 to 0.45 edges a document in the runs measured, 0.36 on real text),
# so past GRAPH_SPREAD partitions its rounds take one per GRAPH_SHARE of
# dedup's hash partitions: a million documents' edges at the default, about
# 10 MB a task. Its rounds are two tasks a partition each; at dedup's partition
# count they were half of dedup's tasks, which the driver submits one by one
# (docs/scaling.md). Up to GRAPH_SPREAD partitions each round keeps as many
# tasks as dedup has partitions, to spread a small job over a large machine.
# The labels, component minima, do not depend on the partitions.
GRAPH_SHARE = 10
GRAPH_SPREAD = 16


def graph_partitions(partitions: int) -> int:
    """Hash partitions of the graph's rounds for dedup's `partitions`."""
    return min(partitions, max(GRAPH_SPREAD, -(-partitions // GRAPH_SHARE)))


def connected_components(ex: Exchange, edge_refs: list, partitions: int) -> tuple[list, int]:
    """The components of the edge tables `edge_refs`: each routed both ways
    by a task of its own, then components_of_routed."""
    both = ex.hop(partitions)
    sent = [call(_route_both_ways, both.returns, p, partitions, both.outbox(i))
            for i, p in enumerate(edge_refs)]  # fmt: skip
    return components_of_routed(ex, both, sent, partitions)


def components_of_routed(ex: Exchange, both: Hop, sent: list, partitions: int) -> tuple[list, int]:
    """Large-star / small-star rounds until the edge set stops changing, from
    the edges senders put in `both` both ways (both_ways; `sent` is their
    returns for it, and the hop is released here); the (node, label) refs
    per partition and the rounds run.

    Two tasks a partition a round: each star step sends its own output on to
    the next hop (small-star sends it before knowing whether the round
    converged, with its checksum and labels). Separate route, star and
    checksum tasks were five a partition a round, the most of dedup's tasks
    on the driver at scale (benchmarks/cost_model.py). The tasks that find
    the edges (dedup's buckets and verify) send them into the first hop
    themselves, which spares a task each."""
    routed = both.inboxes(sent)
    previous = None
    for round_ in range(1, MAX_ROUNDS + 1):
        by_larger = ex.hop(partitions)
        large = by_larger.inboxes(
            [call(_large_star, by_larger.returns, routed[p], partitions, by_larger.outbox(p))
             for p in range(partitions)]
        )  # fmt: skip
        both.release()
        both = ex.hop(partitions)
        returns = _small_star_returns(both.returns)
        small = [
            submit(_small_star, returns, large[p], partitions, both.outbox(p))
            for p in range(partitions)
        ]
        routed = both.inboxes([s["edges"] for s in small])
        sums = ray.get([s["checksum"] for s in small])
        by_larger.release()
        current = (sum(c for c, _ in sums), sum(s for _, s in sums) % 2**64)
        if current == previous:
            both.release()  # the round that would follow is not run
            return [s["labels"] for s in small], round_
        previous = current
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def _small_star_returns(edges: int) -> Returns:
    return Returns((("checksum", None), ("labels", None), ("edges", edges)))


def _route(hi: np.ndarray, lo: np.ndarray, partitions: int) -> Split:
    return split(pairs_table(hi, lo), partition_of(hi, partitions), partitions)


def send_edges(edges: pa.Table, partitions: int, out: Outbox) -> list:
    """A task's edges into the first hop of components_of_routed: both ways."""
    return out.send(both_ways(*ends(edges), partitions))


def edge_returns(edges: int) -> Returns:
    return Returns((("edges", edges), ("count", None)))


def edges_sent(edges: pa.Table, partitions: int, out: Outbox) -> Any:
    """The returns of a task that found `edges` (dedup's verify): the edges
    sent into the graph's first hop, and their number."""
    sent = send_edges(edges, partitions, out)
    return edge_returns(len(sent)).pack(edges=sent, count=edges.num_rows)


def both_ways(hi: np.ndarray, lo: np.ndarray, partitions: int) -> Split:
    """Edges (hi, lo) to the partitions of both ends, as the rounds take them."""
    return _route(np.r_[hi, lo], np.r_[lo, hi], partitions)


@ray.remote(max_retries=TASK_RETRIES)
def _route_both_ways(edges, partitions, out: Outbox):
    return as_returns(send_edges(edges, partitions, out))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _large_star(pieces, partitions, out: Outbox):
    """Large-star on this partition's edges, sent on by their larger end."""
    hi, lo = large_star(*ends(receive(pieces)))
    return as_returns(out.send(_route(hi, lo, partitions)))


@ray.remote(max_retries=TASK_RETRIES)
@takes_pieces
def _small_star(pieces, partitions, out: Outbox):
    """Small-star on this partition's edges: their checksum, the labels they
    give if the round converged, and the edges sent both ways for the next."""
    hi, lo = small_star(*ends(receive(pieces)))
    sent = out.send(both_ways(hi, lo, partitions))
    return _small_star_returns(len(sent)).pack(
        checksum=edge_checksum(hi, lo), labels=star_labels(hi, lo), edges=sent
    )


def star_labels(hi: np.ndarray, lo: np.ndarray) -> pa.Table:
    """(node, label) for every node of converged stars (edges to centres)."""
    centres = np.unique(lo)
    return pa.table({"node": np.r_[hi, centres], "label": np.r_[lo, centres]})
