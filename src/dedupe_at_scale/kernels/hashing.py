"""64-bit hashing pieces shared by MinHash, the quality n-grams, the
decontamination index, the pre-tokenizer and dedup's keys: one definition,
so that every user mixes bits the same way."""

from __future__ import annotations

import numba
import numpy as np

# 2^64 / golden ratio, odd: a multiplier that spreads consecutive inputs.
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
# FNV-1a over bytes (MinHash's tokens, the BPE kernel's vocabulary).
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@numba.njit(cache=True, inline="always")
def mix(x):
    """splitmix64's finalizer: a bijection that spreads every input bit over
    the key (good avalanche)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _first_kernel(x):
    return mix(x)


def set_numba_up() -> None:
    """numba sets itself up once per process, on the first call of any
    kernel (its type registries, and scipy imported to look for a BLAS:
    about 0.7 s on 2 cores); a trivial kernel pays it where it can be timed."""
    _first_kernel(np.uint64(1))


MASK64 = (1 << 64) - 1


def mix_int(x: int) -> int:
    """`mix` on Python ints (a few hundred stop words: no kernel to load)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)
