"""Gopher's word n-gram repetition signals for a whole batch at once.

The per-document reference is `text.top_ngram_chars` and
`text.duplicated_ngram_chars` (Counter and dict over word tuples). Here the
words of every document become flat arrays (Python's own string hash, and the
length), and a numba kernel walks each document once per n with an
open-addressing table of 64-bit n-gram keys rolled from the word hashes (one
multiply-add per step, whatever n): no tuple, no Python object per n-gram.
Since `measure.py`, the job's kernel hashes words itself and calls
`doc_ngram_chars` per document. The answers are the reference's,
tie-breaking included (tests/test_quality_ngrams.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numba
import numpy as np

from dedupe_at_scale.kernels.hashing import MULTIPLIER, mix


@numba.njit(cache=True, inline="always")
def _power(n):
    p = np.uint64(1)
    for _ in range(n - 1):
        p *= MULTIPLIER
    return p


@numba.njit(cache=True, inline="always")
def _roll(key, hashes, at, n, power):
    """The key of the n-gram at `at` from the one at at - 1 (a polynomial in
    the word hashes, which are already well mixed; MULTIPLIER is odd)."""
    if at == 0:
        key = np.uint64(0)
        for k in range(n):
            key = key * MULTIPLIER + hashes[at + k]
        return key
    return (key - hashes[at - 1] * power) * MULTIPLIER + hashes[at + n - 1]


@numba.njit(cache=True, inline="always")
def _slot(keys, stamps, key, stamp, size):
    """Where `key` is in this round's table (slots stamped `stamp`), or the
    free slot it goes to: open addressing, linear probing."""
    slot = np.int64(mix(key) & np.uint64(size - 1))
    while stamps[slot] == stamp and keys[slot] != key:
        slot = (slot + 1) & (size - 1)
    return slot


@numba.njit(cache=True)
def table_size(m):
    """Slots of the open-addressing tables for a document of m words."""
    size = 1
    while size < 2 * m:
        size *= 2
    return size


@numba.njit(cache=True)
def new_tables(size):
    """keys, first position, times seen, stamp (slot in use when == stamp:
    no clearing between documents), and the covered-word flags."""
    return (
        np.zeros(size, np.uint64),
        np.zeros(size, np.int64),
        np.zeros(size, np.int64),
        np.zeros(size, np.int64),
        np.zeros(size, np.bool_),
    )


@numba.njit(cache=True)
def doc_ngram_chars(hashes, cumulative, start, m, top_ns, dup_ns, top_row, dup_row, tables, stamp):
    """One document's words hashes[start:start + m] (character counts from
    `cumulative`) into top_row / dup_row; `tables` hold at least
    table_size(m) slots. Returns the last stamp used."""
    keys, first, seen, stamps, covered = tables
    doc = hashes[start : start + m]
    size = table_size(m)
    for j in range(len(top_ns)):
        n = top_ns[j]
        if m < n:
            continue
        stamp += 1
        best_count, best_first = 0, 0
        power, key = _power(n), np.uint64(0)
        for i in range(m - n + 1):
            key = _roll(key, doc, i, n, power)
            slot = _slot(keys, stamps, key, stamp, size)
            if stamps[slot] != stamp:
                stamps[slot], keys[slot], first[slot], seen[slot] = stamp, key, i, 1
            else:
                seen[slot] += 1
            c, f = seen[slot], first[slot]
            # Counter.most_common: the highest count, the earliest seen on ties.
            if c > best_count or (c == best_count and f < best_first):
                best_count, best_first = c, f
        if best_count >= 2:
            at = start + best_first
            top_row[j] = best_count * (cumulative[at + n] - cumulative[at])
    repeated = True
    for j in range(len(dup_ns)):
        n = dup_ns[j]
        # A document with one n-gram or none repeats none; if no shorter
        # n-gram repeats, no longer one can.
        if m <= n or not repeated:
            continue
        stamp += 1
        covered[:m] = False
        any_repeat = False
        power, key = _power(n), np.uint64(0)
        for i in range(m - n + 1):
            key = _roll(key, doc, i, n, power)
            slot = _slot(keys, stamps, key, stamp, size)
            if stamps[slot] != stamp:
                stamps[slot], keys[slot], first[slot] = stamp, key, i
            else:
                any_repeat = True
                covered[first[slot] : first[slot] + n] = True
                covered[i : i + n] = True
        repeated = any_repeat
        if any_repeat:
            chars = 0
            for k in range(m):
                if covered[k]:
                    chars += cumulative[start + k + 1] - cumulative[start + k]
            dup_row[j] = chars
    return stamp


@numba.njit(cache=True)
def _kernel(hashes, cumulative, starts, counts, top_ns, dup_ns, top_out, dup_out):
    most = 1
    for d in range(len(counts)):
        most = max(most, counts[d])
    tables = new_tables(table_size(most))
    stamp = 0
    for d in range(len(counts)):
        stamp = doc_ngram_chars(
            hashes, cumulative, starts[d], counts[d], top_ns, dup_ns, top_out[d], dup_out[d],
            tables, stamp,
        )  # fmt: skip


def ngram_chars(
    word_lists: Sequence[Sequence[str]], top_ns: Sequence[int], dup_ns: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per document and n: `text.top_ngram_chars` for each n of `top_ns`
    (shape docs x len(top_ns)) and `text.duplicated_ngram_chars` for each n
    of `dup_ns`, which must be ascending (docs x len(dup_ns))."""
    counts = np.fromiter(map(len, word_lists), np.int64, len(word_lists))
    total = int(counts.sum())
    words = list(chain.from_iterable(word_lists))
    # hash() of equal strings is equal within a process, which is all we need.
    hashes = np.fromiter(map(hash, words), np.int64, total).view(np.uint64)
    cumulative = np.zeros(total + 1, np.int64)
    np.cumsum(np.fromiter(map(len, words), np.int64, total), out=cumulative[1:])
    starts = np.cumsum(counts) - counts
    top_out = np.zeros((len(counts), len(top_ns)), np.int64)
    dup_out = np.zeros((len(counts), len(dup_ns)), np.int64)
    if total:
        top = np.asarray(top_ns, np.int64)
        dup = np.asarray(dup_ns, np.int64)
        _kernel(hashes, cumulative, starts, counts, top, dup, top_out, dup_out)
    return top_out, dup_out
