"""Code points for the numba kernels (quality signals, decontamination, token
pre-splitting): UTF-8 decoding and per-code-point tables of Python's own character
classes and lower-casing, so that numba code tokenizes exactly as the `re`
patterns and `str` methods of text.py do."""

from __future__ import annotations

import functools
import re

import numba
import numpy as np

from dedupe_at_scale import text as textlib
from dedupe_at_scale.kernels.hashing import FNV_PRIME, MASK64, mix, mix_int

# Per-code-point flags.
IS_WORD, IS_SPACE, IS_ALPHA, IS_ALNUM, IS_COMPLEX = 1, 2, 4, 8, 16
IS_TERMINAL, IS_SENTENCE_END, IS_CJK_END, IS_CLOSER, IS_BULLET = 32, 64, 128, 256, 512
IS_JOINER, IS_CASED, IS_CASE_IGNORABLE = 1024, 2048, 4096
CAPITAL_SIGMA, DOTTED_CAPITAL_I = 0x03A3, 0x0130

SEED = np.uint64(0x243F6A8885A308D3)
assert textlib.ELLIPSES == ("...", "…"), "the kernel looks for these two"


@functools.cache
def unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """(flags, lower) for every code point, from this Python's own `re` and
    `str`, once per process. Each code point is lowered on its own, as
    `ch.lower()` would (tests/test_text.py holds it to that loop), but in one
    `str.lower` call over all of them, a separator between each two: a
    Python loop over 1.1M code points cost every worker process 0.5 s."""
    codes = np.arange(0x110000, dtype=np.uint32)
    everything = utf32(codes)
    flags = np.zeros(0x110000, np.uint16)
    for pattern, bit in (
        (r"\w+", IS_WORD),
        (r"\s+", IS_SPACE),
        (r"[^\W\d_]+", IS_ALPHA),
        (r"[^\W_]+", IS_ALNUM),
    ):
        for match in re.finditer(pattern, everything):
            flags[match.start() : match.end()] |= bit
    marks = (
        (textlib.TERMINAL_PUNCTUATION, IS_TERMINAL),
        (textlib.SENTENCE_ENDS, IS_SENTENCE_END),
        (textlib.CJK_SENTENCE_ENDS, IS_CJK_END),
        (textlib.CLOSERS, IS_CLOSER),
        (textlib.BULLETS, IS_BULLET),
        (textlib.WORD_JOINERS, IS_JOINER),
    )
    for chars, bit in marks:
        for ch in chars:
            assert len(ch) == 1, f"the kernel matches single characters, not {ch!r}"
            flags[ord(ch)] |= bit
    # NUL separates the others (it lowers to itself, and no lower case holds
    # it); being uncased, it keeps a capital sigma from reading as final.
    spaced = np.zeros(2 * 0x110000 - 3, np.uint32)
    spaced[::2] = codes[1:]
    lowered = utf32(utf32(spaced).lower())
    ends = np.r_[np.flatnonzero(lowered == 0), len(lowered)]
    starts = np.r_[0, ends[:-1] + 1]
    single = ends - starts == 1
    lower = codes.astype(np.int32)
    lower[1:][single] = lowered[starts[single]].astype(np.int32)
    flags[1:][~single] |= IS_COMPLEX
    assert np.flatnonzero(~single).tolist() == [DOTTED_CAPITAL_I - 1], "lower_word expects only İ"
    flags[CAPITAL_SIGMA] |= IS_COMPLEX  # final or not depends on its neighbours
    _sigma_context(flags)
    return flags, lower


def _sigma_context(flags: np.ndarray) -> None:
    """IS_CASED and IS_CASE_IGNORABLE, the two properties str.lower reads
    around a capital sigma, for the characters words hold (\\w and joiners),
    read off Python's own lower(): in "AcΣ", the sigma is final (ς) when c is
    case-ignorable or cased; after a NUL, "cΣ" has it final only when c is
    cased and not case-ignorable (ignorable ones are skipped)."""
    codes = np.flatnonzero(flags & (IS_WORD | IS_JOINER)).astype(np.uint32)
    final = []
    for before in ([ord("A")], []):
        piece = len(before) + 3
        probe = np.zeros(len(codes) * piece, np.uint32)
        for k, c in enumerate(before):
            probe[k::piece] = c
        probe[len(before) :: piece] = codes
        probe[len(before) + 1 :: piece] = CAPITAL_SIGMA
        lowered = utf32(utf32(probe).lower())
        final.append(lowered[np.flatnonzero(lowered == 0) - 1] == 0x03C2)
    after_cased, cased = final
    flags[codes[cased]] |= IS_CASED
    flags[codes[after_cased & ~cased]] |= IS_CASE_IGNORABLE


def utf32(data):
    """Code points (uint32 array) to str, or str to code points; lone
    surrogates included."""
    if isinstance(data, str):
        return np.frombuffer(data.encode("utf-32-le", "surrogatepass"), np.uint32)
    return data.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def hash_word(word: str) -> int:
    """The kernel's hash of a lower-cased word, in plain Python (for the stop
    words: no numba function to load for a few hundred words)."""
    h = int(SEED)
    for c in word:
        h = ((h ^ ord(c)) * int(FNV_PRIME)) & MASK64
    return mix_int(h)


@numba.njit(cache=True)
def lower_word(cps, a, b, flags, lower):
    """(hash_word, length) of cps[a:b].lower() where the word holds a
    character `lower` cannot map alone: İ becomes "i" + U+0307, and a capital
    sigma is final (ς) after a cased character and not before one, skipping
    case-ignorable ones (Unicode's Final_Sigma, as str.lower applies it; a
    word's neighbours in the joined words are spaces, which end the search)."""
    h, length = SEED, 0
    for k in range(a, b):
        c = cps[k]
        if c == DOTTED_CAPITAL_I:
            h = (h ^ np.uint64(ord("i"))) * FNV_PRIME
            c, length = 0x0307, length + 1
        elif c == CAPITAL_SIGMA:
            j = k - 1
            while j >= a and flags[cps[j]] & IS_CASE_IGNORABLE:
                j -= 1
            final = j >= a and (flags[cps[j]] & IS_CASED) != 0
            if final:
                j = k + 1
                while j < b and flags[cps[j]] & IS_CASE_IGNORABLE:
                    j += 1
                final = j == b or not flags[cps[j]] & IS_CASED
            c = 0x03C2 if final else 0x03C3
        else:
            c = lower[c]
        h = (h ^ np.uint64(c)) * FNV_PRIME
        length += 1
    return mix(h), length


@numba.njit(cache=True, inline="always")
def utf8_size(cp):
    """Bytes of code point cp in UTF-8 (no branch)."""
    return 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)


@numba.njit(cache=True, inline="always")
def code_point(data, i):
    """(code point, its length in bytes) of the UTF-8 sequence at data[i]."""
    b = np.int32(data[i])
    if b < 0x80:
        return b, 1
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (np.int32(data[i + 1]) & 0x3F), 2
    if b < 0xF0:
        cp = ((b & 0x0F) << 12) | ((np.int32(data[i + 1]) & 0x3F) << 6)
        return cp | (np.int32(data[i + 2]) & 0x3F), 3
    cp = ((b & 0x07) << 18) | ((np.int32(data[i + 1]) & 0x3F) << 12)
    return cp | ((np.int32(data[i + 2]) & 0x3F) << 6) | (np.int32(data[i + 3]) & 0x3F), 4


@numba.njit(cache=True, inline="always")
def table_code_point(data, i):
    """code_point, with one past the code-point range (only invalid UTF-8
    makes it) as U+FFFD, so that it can index the per-code-point tables."""
    cp, size = code_point(data, i)
    return (cp if cp < 0x110000 else 0xFFFD), size


@numba.njit(cache=True)
def decode(data, start, end, out):
    n, i = 0, start
    while i < end:
        out[n], size = table_code_point(data, i)
        i += size
        n += 1
    return n


@numba.njit(cache=True, inline="always")
def strip(cps, a, b, flags):
    while a < b and flags[cps[a]] & IS_SPACE:
        a += 1
    while b > a and flags[cps[b - 1]] & IS_SPACE:
        b -= 1
    return a, b


@numba.njit(cache=True, inline="always")
def ends_with_ellipsis(cps, s, e):
    last = cps[e - 1]
    return last == 0x2026 or (e - s >= 3 and last == 46 and cps[e - 2] == 46 and cps[e - 3] == 46)


@numba.njit(cache=True)
def single_line_prefixes(data, offsets, rows, max_chars, flags, out, out_offsets):
    """text.single_line(text[:max_chars]) of each of `rows`, as UTF-8 into
    `out`, row r ending at out_offsets[r + 1]: runs of whitespace (IS_SPACE,
    what str.split() splits at) become one space, none at either end. The
    bytes of other characters are copied as they are."""
    k = 0
    out_offsets[0] = 0
    for r in range(rows.shape[0]):
        i, end = offsets[rows[r]], offsets[rows[r] + 1]
        chars, pending = 0, False
        while i < end and chars < max_chars:
            cp, n = code_point(data, i)
            if cp < 0x110000 and flags[cp] & IS_SPACE:
                pending = k > out_offsets[r]  # a space only between two words
            else:
                if pending:
                    out[k] = 32
                    k += 1
                    pending = False
                for j in range(n):
                    out[k + j] = data[i + j]
                k += n
            i += n
            chars += 1
        out_offsets[r + 1] = k
