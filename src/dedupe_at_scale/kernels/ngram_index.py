"""numba kernels of the decontamination index (stages/decontaminate/): word
n-gram keys of eval items and documents over UTF-8 buffers, and an
open-addressing table of the items' keys."""

from __future__ import annotations

import numba
import numpy as np

from dedupe_at_scale.kernels.codepoints import IS_ALNUM, decode
from dedupe_at_scale.kernels.hashing import MULTIPLIER, mix

EMPTY_KEY = np.uint64(0)


@numba.njit(cache=True)
def word_hashes(data, start, end, flags, lower, cps, hashes, starts, ends):
    """Word hashes and code-point spans of one UTF-8 document; the count."""
    n = decode(data, start, end, cps)
    w, i = 0, 0
    while i < n:
        if flags[cps[i]] & IS_ALNUM:
            h = np.uint64(0x243F6A8885A308D3)
            s = i
            while i < n and flags[cps[i]] & IS_ALNUM:
                h = h * MULTIPLIER + np.uint64(lower[cps[i]])
                i += 1
            hashes[w], starts[w], ends[w] = mix(h), s, i
            w += 1
        else:
            i += 1
    return w


@numba.njit(cache=True, inline="always")
def _key(prefix, powers, i, k):
    """Hash of words i .. i+k-1 from prefix sums; never EMPTY_KEY."""
    g = mix(prefix[i + k] - prefix[i] * powers[k] + np.uint64(k))
    return g if g != 0 else np.uint64(1)


@numba.njit(cache=True)
def _prefix(hashes, w, prefix):
    prefix[0] = 0
    for i in range(w):
        prefix[i + 1] = prefix[i] * MULTIPLIER + hashes[i]


@numba.njit(cache=True)
def item_ngram_keys(data, offsets, flags, lower, n, min_words, powers):
    """Every item's n-gram keys (or its whole key when shorter than n
    words, if at least min_words): (keys, item of each key, words per item)."""
    items = len(offsets) - 1
    size = max(offsets[-1] - offsets[0], 1)
    cps = np.empty(size, np.int32)
    hashes = np.empty(size, np.uint64)
    starts = np.empty(size, np.int64)
    ends = np.empty(size, np.int64)
    prefix = np.empty(size + 1, np.uint64)
    keys = np.empty(size + items, np.uint64)
    owner = np.empty(size + items, np.int64)
    words = np.zeros(items, np.int64)
    m = 0
    for d in range(items):
        w = word_hashes(data, offsets[d], offsets[d + 1], flags, lower, cps, hashes, starts, ends)
        words[d] = w
        _prefix(hashes, w, prefix)
        if w >= n:
            for i in range(w - n + 1):
                keys[m], owner[m] = _key(prefix, powers, i, n), d
                m += 1
        elif w >= min_words:
            keys[m], owner[m] = _key(prefix, powers, 0, w), d
            m += 1
    return keys[:m], owner[:m], words


@numba.njit(cache=True, inline="always")
def _maybe(bits, shift, key):
    """The prefilter: False means surely absent (one bit per key, 16 bits
    per key in all: small enough to stay in cache, unlike the table)."""
    at = key >> shift
    return (bits[at >> np.uint64(6)] >> (at & np.uint64(63))) & np.uint64(1)


@numba.njit(cache=True)
def _lookup(table, values, key):
    mask = len(table) - 1
    slot = np.int64(key & np.uint64(mask))
    while True:
        k = table[slot]
        if k == key:
            return values[slot]
        if k == EMPTY_KEY:
            return -1
        slot = (slot + 1) & mask


@numba.njit(cache=True)
def fill_key_table(keys, table, values, bits, shift):
    mask = len(table) - 1
    for v in range(len(keys)):
        at = keys[v] >> shift
        bits[at >> np.uint64(6)] |= np.uint64(1) << (at & np.uint64(63))
        slot = np.int64(keys[v] & np.uint64(mask))
        while table[slot] != EMPTY_KEY:
            slot = (slot + 1) & mask
        table[slot] = keys[v]
        values[slot] = v


@numba.njit(cache=True)
def match_ngrams(
    data, offsets, rows, flags, lower, n, short_lengths, powers, table, values, bits, shift
):
    """(row, key index, first code point, end code point) of every eval
    n-gram (or whole short item) found in the given rows."""
    longest = 1
    for r in rows:
        longest = max(longest, offsets[r + 1] - offsets[r])
    cps = np.empty(longest, np.int32)
    hashes = np.empty(longest, np.uint64)
    starts = np.empty(longest, np.int64)
    ends = np.empty(longest, np.int64)
    prefix = np.empty(longest + 1, np.uint64)
    cap = 64
    out = np.empty((cap, 4), np.int64)
    m = 0
    for r in rows:
        w = word_hashes(data, offsets[r], offsets[r + 1], flags, lower, cps, hashes, starts, ends)
        _prefix(hashes, w, prefix)
        for i in range(w):
            for j in range(len(short_lengths) + 1):
                k = n if j == len(short_lengths) else short_lengths[j]
                if i + k > w:
                    continue
                key = _key(prefix, powers, i, k)
                if not _maybe(bits, shift, key):
                    continue
                v = _lookup(table, values, key)
                if v < 0:
                    continue
                if m == cap:
                    cap *= 2
                    grown = np.empty((cap, 4), np.int64)
                    grown[:m] = out[:m]
                    out = grown
                out[m, 0], out[m, 1], out[m, 2], out[m, 3] = r, v, starts[i], ends[i + k - 1]
                m += 1
    return out[:m]


def ngram_powers(n: int) -> np.ndarray:
    """MULTIPLIER**k mod 2**64 for k in 0..n: a rolling n-gram hash's weights."""
    powers = np.ones(n + 1, np.uint64)
    with np.errstate(over="ignore"):  # arithmetic mod 2**64
        for k in range(1, n + 1):
            powers[k] = powers[k - 1] * MULTIPLIER
    return powers
