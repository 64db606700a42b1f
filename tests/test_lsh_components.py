"""Buckets to edges and connected components on numpy arrays, no Ray."""

from __future__ import annotations

import random

import numpy as np

from dedupe_at_scale.steps.dedup.components import components_local, large_star, small_star
from dedupe_at_scale.steps.dedup.lsh import band_candidates, exact_edges, unique_pairs


def arr(*values, dtype=np.int64):
    return np.array(values, dtype=dtype)


def test_exact_edges_link_each_group_to_its_first_member():
    keys = arr(7, 3, 7, 3, 9, 7, dtype=np.uint64)
    uids = arr(50, 10, 20, 40, 30, 60)
    hi, lo = exact_edges(keys, uids)
    assert sorted(zip(hi.tolist(), lo.tolist())) == [(40, 10), (50, 20), (60, 20)]


def test_band_candidates_all_pairs_and_folding_of_identical_texts():
    # One bucket: uids 1, 2, 3 distinct texts, uid 4 identical to uid 2.
    keys = arr(5, 5, 5, 5, 8, dtype=np.uint64)
    uids = arr(1, 2, 3, 4, 9)
    exact = arr(100, 200, 300, 200, 900, dtype=np.uint64)
    hi, lo = band_candidates(keys, uids, exact)
    assert sorted(zip(hi.tolist(), lo.tolist())) == [(2, 1), (3, 1), (3, 2)]


def test_large_buckets_get_star_and_neighbour_pairs():
    n = 40
    keys = np.full(n, 1, dtype=np.uint64)
    uids = np.arange(n, dtype=np.int64)
    hi, lo = band_candidates(keys, uids, uids.astype(np.uint64), all_pairs_limit=10)
    pairs = set(zip(hi.tolist(), lo.tolist()))
    assert {(i, 0) for i in range(1, n)} <= pairs
    assert {(i, i - 1) for i in range(1, n)} <= pairs
    assert len(pairs) == 2 * (n - 1) - 1  # (1, 0) is both


def test_unique_pairs_orients_and_drops_self_pairs():
    hi, lo = unique_pairs(arr(1, 2, 3, 3), arr(2, 1, 3, 1))
    assert list(zip(hi.tolist(), lo.tolist())) == [(2, 1), (3, 1)]


def run_stars(hi: np.ndarray, lo: np.ndarray) -> dict[int, int]:
    """Large-star / small-star in one partition until the edges stop changing."""
    previous = None
    while True:
        hi, lo = large_star(np.r_[hi, lo], np.r_[lo, hi])
        hi, lo = small_star(hi, lo)
        current = set(zip(hi.tolist(), lo.tolist()))
        if current == previous:
            break
        previous = current
    labels = {int(v): int(m) for v, m in zip(hi, lo)}
    labels.update({int(m): int(m) for m in lo})
    return labels


def test_chain_ends_in_one_component():
    # A~B and B~C, A and C unrelated: one component labelled by its smallest node.
    labels = run_stars(arr(20, 30), arr(10, 20))
    assert labels == {10: 10, 20: 10, 30: 10}


def test_stars_match_union_find_on_random_graphs():
    rng = random.Random(5)
    for _ in range(20):
        nodes = rng.randint(2, 300)
        edges = [(rng.randrange(nodes), rng.randrange(nodes)) for _ in range(rng.randint(1, 400))]
        a = np.array([e[0] for e in edges], dtype=np.int64) * 1000 + 7
        b = np.array([e[1] for e in edges], dtype=np.int64) * 1000 + 7
        hi, lo = unique_pairs(a, b)
        if len(hi) == 0:
            continue
        assert run_stars(hi, lo) == components_local(hi, lo)
