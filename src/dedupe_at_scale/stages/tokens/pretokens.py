"""GPT-2's and Llama 3's pre-tokenizers in numba, over Arrow's UTF-8
buffers, with a cache of token counts per pre-token.

A byte-level BPE never merges across the pieces its pre-tokenizer cuts, so a
document's token count is the sum of its pieces' counts. Pieces repeat
(Zipf), so most are counted once per worker and then looked up by a 64-bit
hash of their bytes; the few new ones go to the tokenizer's own BPE model.

The pieces are those of GPT-2's pattern, as the `tokenizers` library splits
it (ByteLevel with use_regex):
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
with its regex engine's own \\p{L}, \\p{N} and \\s (classes.py); or those
of Llama 3's (and GPT-4's cl100k) pattern, a Split before a ByteLevel without
its regex:
    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|
    ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+
(or \\p{N} one digit at a time, as some of its descendants have it).
"""

from __future__ import annotations

import numba
import numpy as np

from dedupe_at_scale.kernels.codepoints import SEED, decode, utf8_size
from dedupe_at_scale.kernels.hashing import FNV_OFFSET, FNV_PRIME, mix

LETTER, NUMBER, SPACE, OTHER = 0, 1, 2, 3
APOSTROPHE, BLANK, CR, LF = 0x27, 0x20, 0x0D, 0x0A
EMPTY = np.uint64(0)
GPT2, CL100K = 0, 1  # the patterns next_piece knows


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


@numba.njit(cache=True, inline="always")
def _contraction_any_case(cps, i, n):
    """Length of (?i:'s|'t|'re|'ve|'m|'ll|'d) at i, else 0. The regex engine
    folds case as Unicode does: the long s (U+017F) is an s too."""
    if cps[i] != APOSTROPHE or i + 1 >= n:
        return 0
    a = cps[i + 1]
    if a < 0x80:
        a |= 0x20  # ASCII lower case
    if a == 0x73 or a == 0x74 or a == 0x6D or a == 0x64 or a == 0x17F:  # s t m d ſ
        return 2
    if i + 2 < n:
        b = cps[i + 2]
        if b < 0x80:
            b |= 0x20
        if (a == 0x72 or a == 0x76) and b == 0x65:  # re ve
            return 3
        if a == 0x6C and b == 0x6C:  # ll
            return 3
    return 0


@numba.njit(cache=True)
def next_piece_cl100k(cps, classes, i, n, max_digits):
    """End of the pre-token that starts at i under Llama 3's pattern (the
    regex's leftmost alternative that matches)."""
    k = _contraction_any_case(cps, i, n)
    if k:
        return i + k
    c = cps[i]
    kind = classes[c]
    if kind == LETTER:  # [^\r\n\p{L}\p{N}]?\p{L}+ without its prefix
        return _run(cps, classes, i, n, LETTER)
    if kind != NUMBER and c != CR and c != LF and i + 1 < n and classes[cps[i + 1]] == LETTER:
        return _run(cps, classes, i + 1, n, LETTER)  # ... with it
    if kind == NUMBER:  # \p{N}{1,3}
        return min(_run(cps, classes, i, n, NUMBER), i + max_digits)
    start = i + 1 if c == BLANK and i + 1 < n and classes[cps[i + 1]] == OTHER else i
    if classes[cps[start]] == OTHER:  # " ?[^\s\p{L}\p{N}]+[\r\n]*"
        end = _run(cps, classes, start, n, OTHER)
        while end < n and (cps[end] == CR or cps[end] == LF):
            end += 1
        return end
    end = _run(cps, classes, i, n, SPACE)
    # \s*[\r\n]+: the run up to its last line break, if it has one.
    for p in range(end - 1, i - 1, -1):
        if cps[p] == CR or cps[p] == LF:
            return p + 1
    # \s+(?!\S), \s+: as in GPT-2's pattern.
    if end == n or end - i == 1:
        return end
    return end - 1


@numba.njit(cache=True)
def next_piece(cps, classes, i, n):
    """End of the pre-token that starts at i under GPT-2's pattern (the
    regex's leftmost choice): the reference gpt2_pieces is held to."""
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
def gpt2_pieces(cps, n, classes, first_byte, keys, ends):
    """The pieces of cps[:n] as next_piece cuts them (the tests hold the two
    equal), found by whether each code point starts one. That depends only on
    its neighbours (a contraction starts only at an apostrophe that starts a
    piece), so the pass has no branch per piece to mispredict: 2.5x next_piece
    on real text. Fills keys (each piece's cache key, as count_pieces makes
    it) and ends (the byte offset after each, counting from first_byte);
    returns how many."""
    seed = FNV_OFFSET ^ SEED
    k, h, pos = -1, seed, first_byte
    prev_class, prev_blank = SPACE, False
    c1 = c2 = c3 = 0  # lengths of the contractions that start at i-1, i-2, i-3
    for i in range(n):
        cp = cps[i]
        kind = classes[cp]
        if kind == SPACE:
            # A whitespace run starts a piece, and its last code point another
            # when something else follows (\s+(?!\S)).
            start = (prev_class != SPACE) | ((i + 1 < n) and classes[cps[i + 1]] != SPACE)
        else:
            # A run of one class starts a piece unless a blank before takes it.
            start = (not prev_blank) & (prev_class != kind)
            if c1 | c2 | c3:  # within three of a contraction's apostrophe (rare)
                inside = (c1 >= 2) | (c2 == 3)
                after = (c2 == 2) | (c3 == 3)
                start = (not inside) & (start | after)
        start |= i == 0
        c3, c2, c1 = c2, c1, 0
        if cp == APOSTROPHE and start:
            c1 = _contraction(cps, i, n)
        k += start
        h = seed if start else h
        h = (h ^ np.uint64(cp)) * FNV_PRIME
        keys[k] = h
        pos += utf8_size(cp)
        ends[k] = pos
        prev_class, prev_blank = kind, cp == BLANK
    for q in range(k + 1):
        keys[q] = mix(keys[q]) | np.uint64(1)  # 0 marks an empty slot
    return k + 1


@numba.njit(cache=True)
def cl100k_pieces(cps, n, classes, max_digits, first_byte, keys, ends):
    """gpt2_pieces' output for Llama 3's pattern, cut by next_piece_cl100k."""
    k, i, pos = 0, 0, first_byte
    while i < n:
        end = next_piece_cl100k(cps, classes, i, n, max_digits)
        h = FNV_OFFSET ^ SEED
        for p in range(i, end):
            h = (h ^ np.uint64(cps[p])) * FNV_PRIME
            pos += utf8_size(cps[p])
        keys[k], ends[k] = mix(h) | np.uint64(1), pos  # 0 marks an empty slot
        k, i = k + 1, end
    return k


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
def insert(keys, values, filled, new_keys, new_values):
    """Add counts to the cache; stops at half full (the cache is bounded).
    filled[0]: the slots in use, kept here so as not to count them per call."""
    mask = len(keys) - 1
    used = filled[0]
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
            filled[0] = used


@numba.njit(cache=True)
def distinct(keys):
    """(first, inverse) of nonzero keys: where each distinct key first
    occurs, in order, and which of those each key is. A hash set, one pass:
    np.unique's sort was a tenth of counting real text."""
    size = 1
    while size < 2 * len(keys):
        size *= 2
    mask = size - 1
    slots = np.zeros(size, np.uint64)
    which = np.empty(size, np.int64)
    first = np.empty(len(keys), np.int64)
    inverse = np.empty(len(keys), np.int64)
    found = 0
    for i in range(len(keys)):
        key = keys[i]
        slot = np.int64(key & np.uint64(mask))  # keys are hashes already
        while slots[slot] != EMPTY and slots[slot] != key:
            slot = (slot + 1) & mask
        if slots[slot] == EMPTY:
            slots[slot], which[slot], first[found] = key, found, i
            found += 1
        inverse[i] = which[slot]
    return first[:found], inverse


@numba.njit(cache=True)
def count_pieces(data, offsets, rows, classes, keys, values, miss_row, miss_start, miss_end,
                 miss_key, pattern, max_digits):  # fmt: skip
    """Token counts of `rows` from the cache, and the pieces it does not hold
    (row position, byte span, key) in the miss arrays, which hold one entry
    per byte of those rows. `pattern`: GPT2 or CL100K (with `max_digits`).
    Returns (counts, misses)."""
    counts = np.zeros(len(rows), np.int64)
    longest = 0
    for r in rows:
        longest = max(longest, offsets[r + 1] - offsets[r])
    # Unsigned: the pieces' classes[cps[i]] then need no negative-index test.
    cps = np.empty(longest, np.uint32)
    piece_keys, piece_ends = np.empty(longest, np.uint64), np.empty(longest, np.int64)
    misses = 0
    for j in range(len(rows)):
        r = rows[j]
        n = decode(data, offsets[r], offsets[r + 1], cps)
        pos = offsets[r]  # where the next piece starts, in bytes
        if pattern == GPT2:
            pieces = gpt2_pieces(cps, n, classes, pos, piece_keys, piece_ends)
        else:
            pieces = cl100k_pieces(cps, n, classes, max_digits, pos, piece_keys, piece_ends)
        for q in range(pieces):
            found = _lookup(keys, values, piece_keys[q])
            if found >= 0:
                counts[j] += found
            else:
                miss_row[misses], miss_key[misses] = j, piece_keys[q]
                miss_start[misses], miss_end[misses] = pos, piece_ends[q]
                misses += 1
            pos = piece_ends[q]
    return counts, misses
