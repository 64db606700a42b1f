"""Buckets to edges and connected components on numpy arrays, no Ray."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe_at_scale.steps.dedup.components import components_local, large_star, small_star
from dedupe_at_scale.steps.dedup.lsh import (
    _pairs_kernel,
    band_candidates,
    exact_edges,
    unique_pairs,
)


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


def test_unique_pairs_equals_numpy_unique_on_rows():
    """The reference: np.unique over the stacked rows, on repeats, both
    orientations, self pairs, one value everywhere, and values near the
    int64 limit."""
    rng = np.random.default_rng(3)
    big = np.iinfo(np.int64).max
    cases = [
        (rng.integers(0, 50, 3000), rng.integers(0, 50, 3000)),
        (rng.integers(big - 40, big, 500, endpoint=True), rng.integers(0, 5, 500)),
        (np.full(100, 7), np.full(100, 7)),
        (np.full(100, 7), np.r_[np.full(50, 3), np.full(50, 9)]),
        (np.zeros(0, np.int64), np.zeros(0, np.int64)),
    ]
    for a, b in cases:
        hi, lo = np.maximum(a, b), np.minimum(a, b)
        keep = hi != lo
        want = np.unique(np.stack([hi[keep], lo[keep]], axis=1), axis=0).reshape(-1, 2)
        got_hi, got_lo = unique_pairs(a, b)
        assert got_hi.tolist() == want[:, 0].tolist()
        assert got_lo.tolist() == want[:, 1].tolist()
        assert got_hi.dtype == got_lo.dtype == np.int64


def reference_band_candidates(keys, uids, exact, limit):
    """band_candidates before its speed-ups, kept as the reference: every
    row sorted on three columns, np.unique over the pairs."""
    order = np.lexsort((uids, exact, keys))
    keys, uids, exact = keys[order], uids[order], exact[order]
    distinct = np.r_[True, (keys[1:] != keys[:-1]) | (exact[1:] != exact[:-1])]
    keys, uids = keys[distinct], uids[distinct]
    order = np.lexsort((uids, keys))
    a, b = _pairs_kernel(keys[order], uids[order], limit)
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    keep = hi != lo
    pairs = np.unique(np.stack([hi[keep], lo[keep]], axis=1), axis=0).reshape(-1, 2)
    return pairs[:, 0].tolist(), pairs[:, 1].tolist()


@pytest.mark.parametrize("limit", [1, 3, 32])
def test_band_candidates_equal_the_reference(limit):
    """Buckets of every size around the limit, texts repeated inside a
    bucket, all keys alone, one key for all, rows in any order."""
    rng = np.random.default_rng(limit)
    n = 4000
    cases = [
        rng.integers(0, 600, n).astype(np.uint64),  # buckets of a few
        rng.integers(0, 2**64, n, dtype=np.uint64),  # every key alone
        np.full(n, 2**64 - 1, np.uint64),  # one bucket
        np.r_[rng.integers(0, 40, n // 2), rng.integers(10**6, 2**62, n // 2)].astype(np.uint64),
    ]
    for keys in cases:
        uids = rng.permutation(n * 3)[:n].astype(np.int64)
        exact = rng.integers(0, 30, n).astype(np.uint64)  # identical texts fold
        hi, lo = band_candidates(keys, uids, exact, limit)
        assert (hi.tolist(), lo.tolist()) == reference_band_candidates(keys, uids, exact, limit)


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
