"""Connected components by the large-star / small-star algorithm.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014).
Each step needs only the edges of one node at a time, so it runs on hash
partitions of the edge list (see dedup.py); these functions are the per-partition
work on numpy arrays. Edges are undirected and kept as (larger, smaller). At
convergence every component is a star around its smallest node, which becomes
the component's label.
"""

from __future__ import annotations

import numpy as np

from dedupe_at_scale.kernels.hashing import MULTIPLIER
from dedupe_at_scale.steps.dedup.lsh import unique_pairs


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
