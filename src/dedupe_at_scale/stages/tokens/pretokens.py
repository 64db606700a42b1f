"""GPT-2's pre-tokenizer in numba, over Arrow's UTF-8 buffers, with a cache
of token counts per pre-token.

A byte-level BPE never merges across the pieces its pre-tokenizer cuts, so a
document's token count is the sum of its pieces' counts. Pieces repeat
(Zipf), so most are counted once per worker and then looked up by a 64-bit
hash of their bytes; the few new ones go to the tokenizer's own BPE model.

The pieces are those of GPT-2's pattern, as the `tokenizers` library splits
it (ByteLevel with use_regex):
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
with its regex engine's own \\p{L}, \\p{N} and \\s (classes.py).
"""

from __future__ import annotations

import numba
import numpy as np

from dedupe_at_scale.stages.quality.codepoints import SEED, decode
from dedupe_at_scale.stages.quality.ngrams import MULTIPLIER, mix

LETTER, NUMBER, SPACE, OTHER = 0, 1, 2, 3
APOSTROPHE, BLANK = 0x27, 0x20
EMPTY = np.uint64(0)


@numba.njit(cache=True, inline="always")
def _run(cps, classes, i, n, kind):
    """End of the run of `kind` code points starting at i."""
    while i < n and classes[cps[i]] == kind:
        i += 1
    return i


@numba.njit(cache=True, inline="always")
def _contraction(cps, i, n):
    """Length of 's 't 're 've 'm 'll 'd at i (case-sensitive), else 0."""
    if cps[i] != APOSTROPHE or i + 1 >= n:
        return 0
    a = cps[i + 1]
    if a == 0x73 or a == 0x74 or a == 0x6D or a == 0x64:  # s t m d
        return 2
    if i + 2 < n:
        b = cps[i + 2]
        if (a == 0x72 and b == 0x65) or (a == 0x76 and b == 0x65):  # re ve
            return 3
        if a == 0x6C and b == 0x6C:  # ll
            return 3
    return 0


@numba.njit(cache=True)
def next_piece(cps, classes, i, n):
    """End of the pre-token that starts at i (the regex's leftmost choice)."""
    k = _contraction(cps, i, n)
    if k:
        return i + k
    c = classes[cps[i]]
    if cps[i] == BLANK and i + 1 < n:
        nxt = classes[cps[i + 1]]
        if nxt != SPACE:  # " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+"
            return _run(cps, classes, i + 1, n, nxt)
    if c != SPACE:
        return _run(cps, classes, i, n, c)
    end = _run(cps, classes, i, n, SPACE)
    # \s+(?!\S): all of the run at the end of the text, else all but its last
    # code point (which then starts the next piece); a single one is \s+.
    if end == n or end - i == 1:
        return end
    return end - 1


@numba.njit(cache=True)
def _lookup(keys, values, key):
    mask = len(keys) - 1
    slot = np.int64(key & np.uint64(mask))
    while keys[slot] != EMPTY:
        if keys[slot] == key:
            return values[slot]
        slot = (slot + 1) & mask
    return -1


@numba.njit(cache=True)
def insert(keys, values, new_keys, new_values):
    """Add counts to the cache; stops at half full (the cache is bounded)."""
    mask = len(keys) - 1
    used = 0
    for k in keys:
        used += k != EMPTY
    for j in range(len(new_keys)):
        if 2 * (used + 1) > len(keys):
            return
        key = new_keys[j]
        slot = np.int64(key & np.uint64(mask))
        while keys[slot] != EMPTY and keys[slot] != key:
            slot = (slot + 1) & mask
        if keys[slot] == EMPTY:
            keys[slot] = key
            values[slot] = new_values[j]
            used += 1


@numba.njit(cache=True)
def count_pieces(data, offsets, rows, classes, keys, values, miss_row, miss_start, miss_end,
                 miss_key):  # fmt: skip
    """Token counts of `rows` from the cache, and the pieces it does not hold
    (row position, byte span, key) in the miss arrays, which hold one entry
    per byte of those rows. Returns (counts, misses)."""
    counts = np.zeros(len(rows), np.int64)
    longest = 0
    for r in rows:
        longest = max(longest, offsets[r + 1] - offsets[r])
    cps = np.empty(longest, np.int32)
    at = np.empty(longest + 1, np.int64)  # byte offset of each code point
    misses = 0
    for j in range(len(rows)):
        r = rows[j]
        start, stop = offsets[r], offsets[r + 1]
        n = decode(data, start, stop, cps)
        pos = start
        for k in range(n):
            at[k] = pos
            b = data[pos]
            pos += 1 if b < 0x80 else (2 if b < 0xE0 else (3 if b < 0xF0 else 4))
        at[n] = stop
        i = 0
        while i < n:
            end = next_piece(cps, classes, i, n)
            h = SEED
            for p in range(at[i], at[end]):
                h = mix(h * MULTIPLIER + np.uint64(data[p]))
            h |= np.uint64(1)  # 0 marks an empty slot
            found = _lookup(keys, values, h)
            if found >= 0:
                counts[j] += found
            else:
                miss_row[misses] = j
                miss_start[misses] = at[i]
                miss_end[misses] = at[end]
                miss_key[misses] = h
                misses += 1
            i = end
    return counts, misses
