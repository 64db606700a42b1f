"""numba kernels of MinHash (stages/minhash.py): per-document token hashes,
the signature's minimum per permutation, band keys, and whole-string hashes,
over the Arrow buffers of a string array."""

from __future__ import annotations

import numba
import numpy as np

from dedupe_at_scale.kernels.codepoints import decode, table_code_point
from dedupe_at_scale.kernels.hashing import FNV_OFFSET, FNV_PRIME, MULTIPLIER, mix

TOKEN_SEED = np.uint64(4)


@numba.njit(cache=True, inline="always")
def _fnv(data, start, end, seed):
    h = FNV_OFFSET ^ seed
    for k in range(start, end):
        h = (h ^ np.uint64(data[k])) * FNV_PRIME
    return mix(h)


@numba.njit(cache=True, inline="always")
def _update(sig, a, b, shingle):
    # min(), not a compare and branch: LLVM vectorizes this loop (1.7x).
    for i in range(sig.shape[0]):
        sig[i] = min(sig[i], np.uint32((a[i] * shingle + b[i]) >> np.uint64(32)))


@numba.njit(cache=True, inline="always")
def _update2(sig, a, b, first, second):
    """_update with two shingles: each a, b and sig value is loaded once for
    both (9% of the kernel on real text; four at once gained nothing more)."""
    for i in range(sig.shape[0]):
        one = np.uint32((a[i] * first + b[i]) >> np.uint64(32))
        two = np.uint32((a[i] * second + b[i]) >> np.uint64(32))
        sig[i] = min(sig[i], min(one, two))


@numba.njit(cache=True, inline="always")
def _is_space(byte):
    return byte == 32 or (9 <= byte <= 13)


@numba.njit(cache=True, inline="always")
def _combine(hashes, first, last, salt):
    h = salt
    for j in range(first, last):
        h = mix(h * MULTIPLIER + hashes[j])
    return h


@numba.njit(cache=True, nogil=True)
def signature_kernel(data, offsets, char_mode, n_words, n_chars, a, b, sigs, exact):
    longest = 1
    for d in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[d + 1] - offsets[d] + 1)
    tok_start = np.empty(longest, dtype=np.int64)
    tok_end = np.empty(longest, dtype=np.int64)
    tok_hash = np.empty(longest, dtype=np.uint64)
    shingle_hash = np.empty(longest, dtype=np.uint64)
    for d in range(offsets.shape[0] - 1):
        start, end = offsets[d], offsets[d + 1]
        # Tokens: whitespace-separated words, or code points (spaces skipped)
        # for scripts without spaces. Runs of whitespace count as one.
        count = 0
        if char_mode[d]:
            k = start
            while k < end:
                stop = k + 1
                while stop < end and (data[stop] & 0xC0) == 0x80:
                    stop += 1
                if not _is_space(data[k]):
                    tok_start[count], tok_end[count] = k, stop
                    count += 1
                k = stop
        else:
            word_start = start
            for k in range(start, end + 1):
                if k == end or _is_space(data[k]):
                    if k > word_start:
                        tok_start[count], tok_end[count] = word_start, k
                        count += 1
                    word_start = k + 1
        for t in range(count):
            tok_hash[t] = _fnv(data, tok_start[t], tok_end[t], TOKEN_SEED)
        n = n_chars if char_mode[d] else n_words
        _sign(tok_hash, shingle_hash, count, n, a, b, sigs[d], exact[d])


@numba.njit(cache=True, inline="always")
def _exact_pair(hashes, count):
    """_combine(hashes, 0, count, 1) and (..., 2) in one loop: two
    independent chains that the CPU runs side by side."""
    h1, h2 = np.uint64(1), np.uint64(2)
    for j in range(count):
        h1 = mix(h1 * MULTIPLIER + hashes[j])
        h2 = mix(h2 * MULTIPLIER + hashes[j])
    return h1, h2


@numba.njit(cache=True, inline="always")
def _sign(tok_hash, shingle_hash, count, n, a, b, sig, exact):
    """A document's signature and exact hashes from its token hashes
    (shingle_hash: scratch, one per token)."""
    # The exact hash covers the token sequence, so whitespace runs do not matter.
    exact[0], exact[1] = _exact_pair(tok_hash, count)
    sig[:] = np.uint32(0xFFFFFFFF)
    if count == 0:
        return
    if count < n:
        _update(sig, a, b, _combine(tok_hash, 0, count, np.uint64(3)))
        return
    # Every shingle's hash first: each is a chain of n dependent mixes, and
    # in a loop of their own the chains of neighbouring shingles overlap.
    shingles = count - n + 1
    for i in range(shingles):
        shingle_hash[i] = _combine(tok_hash, i, i + n, np.uint64(3))
    i = 0
    while i + 1 < shingles:
        _update2(sig, a, b, shingle_hash[i], shingle_hash[i + 1])
        i += 2
    if i < shingles:
        _update(sig, a, b, shingle_hash[i])


@numba.njit(cache=True, inline="always")
def _fnv_code_point(h, cp):
    """FNV-1a of h over cp's UTF-8 bytes."""
    if cp < 0x80:
        return (h ^ np.uint64(cp)) * FNV_PRIME
    if cp < 0x800:
        h = (h ^ np.uint64(0xC0 | (cp >> 6))) * FNV_PRIME
    else:
        if cp < 0x10000:
            h = (h ^ np.uint64(0xE0 | (cp >> 12))) * FNV_PRIME
        else:
            h = (h ^ np.uint64(0xF0 | (cp >> 18))) * FNV_PRIME
            h = (h ^ np.uint64(0x80 | ((cp >> 12) & 0x3F))) * FNV_PRIME
        h = (h ^ np.uint64(0x80 | ((cp >> 6) & 0x3F))) * FNV_PRIME
    return (h ^ np.uint64(0x80 | (cp & 0x3F))) * FNV_PRIME


@numba.njit(cache=True, inline="always")
def _word_tokens(data, start, end, is_word, lower, start_hash, tok_hash):
    """The hashes of the runs of word code points in data[start:end] (FNV-1a
    over their lower case's UTF-8, then mix) into tok_hash; returns how
    many. Decoded as it goes, and with no branch on where a word ends, which
    mispredicts about once a word: every step stores the hash so far where
    the next word's goes and moves on only at a word's end."""
    count = 0
    h = start_hash
    in_word = False
    k = start
    while k < end:
        cp, size = table_code_point(data, k)
        k += size
        word = is_word[cp]
        tok_hash[count] = h
        count += in_word & (not word)
        low = lower[cp]
        if low < 0x80:  # _fnv_code_point's first case, inline
            following = (h ^ np.uint64(low)) * FNV_PRIME
        else:
            following = _fnv_code_point(h, low)
        h = following if word else start_hash
        in_word = word
    if in_word:
        tok_hash[count] = h
        count += 1
    for t in range(count):
        tok_hash[t] = mix(tok_hash[t])
    return count


@numba.njit(cache=True, inline="always")
def _char_tokens(cps, n_cps, is_word, lower, start_hash, tok_hash):
    """The hash of each word code point's lower case, one token each."""
    count = 0
    for k in range(n_cps):
        cp = cps[k]
        if is_word[cp]:
            tok_hash[count] = mix(_fnv_code_point(start_hash, lower[cp]))
            count += 1
    return count


@numba.njit(cache=True, nogil=True)
def raw_signature_kernel(data, offsets, char_mode, is_word, lower, n_words, n_chars, a, b, sigs,
                         exact):  # fmt: skip
    """signature_kernel of normalize(texts), on the texts themselves: a token
    is a run of code points whose lower case (`lower`) normalize() keeps
    (`is_word`: a letter or digit), hashed over its lower case's UTF-8; in
    char mode each such code point is a token."""
    longest = 1
    for d in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[d + 1] - offsets[d] + 1)
    cps = np.empty(longest, dtype=np.int32)
    tok_hash = np.empty(longest, dtype=np.uint64)
    shingle_hash = np.empty(longest, dtype=np.uint64)
    start_hash = FNV_OFFSET ^ TOKEN_SEED
    for d in range(offsets.shape[0] - 1):
        if char_mode[d]:
            n_cps = decode(data, offsets[d], offsets[d + 1], cps)
            count = _char_tokens(cps, n_cps, is_word, lower, start_hash, tok_hash)
        else:
            count = _word_tokens(
                data, offsets[d], offsets[d + 1], is_word, lower, start_hash, tok_hash
            )
        n = n_chars if char_mode[d] else n_words
        _sign(tok_hash, shingle_hash, count, n, a, b, sigs[d], exact[d])


@numba.njit(cache=True, nogil=True)
def band_kernel(sigs, bands, rows, out):
    for d in range(sigs.shape[0]):
        for band in range(bands):
            h = mix(np.uint64(band + 1) * MULTIPLIER)
            for r in range(band * rows, (band + 1) * rows):
                h = mix(h ^ np.uint64(sigs[d, r]))
            out[d, band] = h


@numba.njit(cache=True, nogil=True)
def sparse_space_kernel(data, offsets, max_ratio, out):
    """out[d]: text d has fewer spaces (U+0020) than max_ratio times its
    code points (at least one): Arrow's count_substring and utf8_length
    in one pass over valid UTF-8."""
    for d in range(offsets.shape[0] - 1):
        # A loop over the document's slice, counting continuation bytes:
        # 0.21 -> 0.15 s on the 268 MB of real text (one core), against
        # indexing the whole buffer and counting the other bytes.
        text = data[offsets[d] : offsets[d + 1]]
        spaces = 0
        continuation = 0
        for k in range(text.shape[0]):
            byte = text[k]
            spaces += byte == 32
            continuation += (byte & 0xC0) == 0x80
        length = text.shape[0] - continuation
        out[d] = spaces < max_ratio * max(length, 1)


@numba.njit(cache=True, nogil=True)
def hash_kernel(data, offsets, seed, out):
    for d in range(offsets.shape[0] - 1):
        out[d] = _fnv(data, offsets[d], offsets[d + 1], seed)


@numba.njit(cache=True, nogil=True)
def agreement_kernel(left, left_rows, right, right_rows, threshold, out):
    """out[i]: whether signatures left[left_rows[i]] and right[right_rows[i]]
    agree on >= threshold of their values, as numpy's
    `(a == b).mean() >= threshold` decides it (an exact count over the
    width, in float64), without copying either signature."""
    width = left.shape[1]
    for i in range(left_rows.shape[0]):
        a, b = left[left_rows[i]], right[right_rows[i]]
        equal = 0
        for k in range(width):
            equal += np.int64(a[k] == b[k])
        out[i] = equal / width >= threshold
