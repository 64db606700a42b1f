"""Gopher's word n-gram repetition signals for a whole batch at once.

The per-document reference is `text.top_ngram_chars` and
`text.duplicated_ngram_chars` (Counter and dict over word tuples). Here the
words of every document become flat arrays (Python's own string hash, and the
length), and a numba kernel counts each document's n-grams in an
open-addressing table of 64-bit keys built from the word hashes: no tuple,
no Python object per n-gram. Only the smallest n looks at every position;
each larger n looks at the positions where the n before it repeated, which
on real text are a small part of them.
Since `measure.py`, the job's kernel hashes words itself and calls
`doc_ngram_chars` per document. The answers are the reference's,
tie-breaking included (tests/test_quality_ngrams.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numba
import numpy as np

from dedupe_at_scale.kernels.hashing import MULTIPLIER


@numba.njit(cache=True, inline="always")
def _slot(keys, stamps, key, stamp, size):
    """Where `key` is in this round's table (slots stamped `stamp`), or the
    free slot it goes to: open addressing, linear probing. A key is a
    polynomial in mixed word hashes, so its bits are mixed already: folding
    the high half in is enough, where a `mix` here was 0.15 s of the quality
    kernel's 3.75 on real text (its latency sits before every probe)."""
    slot = np.int64((key ^ (key >> np.uint64(32))) & np.uint64(size - 1))
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
    """keys, first (candidate index), times seen, stamp (slot in use when ==
    stamp: no clearing between documents), then per candidate: position,
    n-gram key, repeated flag."""
    return (
        np.zeros(size, np.uint64),
        np.zeros(size, np.int64),
        np.zeros(size, np.int64),
        np.zeros(size, np.int64),
        np.zeros(size, np.int64),
        np.zeros(size, np.uint64),
        np.zeros(size, np.bool_),
    )


@numba.njit(cache=True)
def doc_ngram_chars(hashes, cumulative, start, m, top_ns, dup_ns, top_row, dup_row, tables, stamp):
    """One document's words hashes[start:start + m] (character counts from
    `cumulative`) into top_row / dup_row; `tables` hold at least
    table_size(m) slots. top_ns and dup_ns ascend. Returns the last stamp used.

    The n's are taken in ascending order, and each looks only at the
    positions whose n-gram for the n before repeated: two equal n-grams
    start with two equal shorter ones, so every occurrence of an n-gram seen
    twice is among them, and an n-gram seen once changes no count (a top
    n-gram counts from two occurrences on). Each candidate's key grows by
    one multiply-add per added word (the same polynomial as a rolling hash).
    """
    keys, first, seen, stamps, at, gram, repeats = tables
    doc = hashes[start : start + m]
    # `repeats` is all False here: each n clears the flags it set.
    count, length, t, d = m, 0, 0, 0
    while count and (t < len(top_ns) or d < len(dup_ns)):
        n = min(top_ns[t] if t < len(top_ns) else m + 1, dup_ns[d] if d < len(dup_ns) else m + 1)
        is_top = t < len(top_ns) and top_ns[t] == n
        is_dup = d < len(dup_ns) and dup_ns[d] == n
        # Grow the candidates' keys to n words; drop those that run past the end.
        kept = 0
        if length == 0:  # the first n: every position where one fits
            kept = max(m - n + 1, 0)
            for i in range(kept):
                key = np.uint64(0)
                for k in range(n):
                    key = key * MULTIPLIER + doc[i + k]
                at[i], gram[i] = i, key
        else:
            for c in range(count):
                i = at[c]
                if i + n > m:
                    break
                key = gram[c]
                for k in range(length, n):
                    key = key * MULTIPLIER + doc[i + k]
                at[kept], gram[kept] = i, key
                kept += 1
        count, length = kept, n
        stamp += 1
        size = table_size(count)
        best_count, best_first = 0, 0
        for c in range(count):
            key = gram[c]
            slot = _slot(keys, stamps, key, stamp, size)
            if stamps[slot] != stamp:
                stamps[slot], keys[slot], first[slot], seen[slot] = stamp, key, c, 1
                continue
            seen[slot] += 1
            repeats[c] = repeats[first[slot]] = True
            # Counter.most_common: the highest count, the earliest seen on ties.
            s, f = seen[slot], at[first[slot]]
            if s > best_count or (s == best_count and f < best_first):
                best_count, best_first = s, f
        if is_top:
            if best_count >= 2:
                at_word = start + best_first
                top_row[t] = best_count * (cumulative[at_word + n] - cumulative[at_word])
            t += 1
        # Only the positions whose n-gram repeated go on. Without a branch:
        # on real text about half of them repeat, and a branch on each
        # mispredicted (0.2 s of the n-grams' 1.1 on 268 MB of real text).
        kept = 0
        for c in range(count):
            at[kept], gram[kept] = at[c], gram[c]
            kept += np.int64(repeats[c])
            repeats[c] = False
        count = kept
        if is_dup:
            if count:  # some n-gram repeated
                # The repeated n-grams' words, as runs of overlapping n-grams
                # (their positions ascend), each run's characters once.
                chars = run_start = run_end = 0
                for c in range(count):
                    if at[c] > run_end:
                        chars += cumulative[start + run_end] - cumulative[start + run_start]
                        run_start = at[c]
                    run_end = at[c] + n
                chars += cumulative[start + run_end] - cumulative[start + run_start]
                dup_row[d] = chars
            d += 1
    return stamp


def ascending(ns: Sequence[int]) -> np.ndarray:
    """n-gram sizes as `doc_ngram_chars` takes them: int64, each larger than
    the one before (each n looks only where the n before it repeated)."""
    array = np.asarray(ns, np.int64)
    if (np.diff(array) <= 0).any():
        raise ValueError(f"n-gram sizes must ascend, each once: {list(ns)}")
    return array


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
    of `dup_ns` (docs x len(dup_ns)); both ascending."""
    top, dup = ascending(top_ns), ascending(dup_ns)
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
        _kernel(hashes, cumulative, starts, counts, top, dup, top_out, dup_out)
    return top_out, dup_out
