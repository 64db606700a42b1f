"""A byte-level BPE model's token count of a piece, in numba: what the
`tokenizers` library's `model.tokenize(piece)` gives, without a Python call
and a Token object per token.

The model's merges are applied as the library applies them: the adjacent pair
of lowest merge rank first, the leftmost on a tie, until no pair merges; with
`ignore_merges` (Llama 3), a piece that is itself a vocabulary entry is one
token. Pieces start as one token per byte (byte-level: every byte has one).
Pieces over MAX_PIECE_BYTES (the scan is quadratic) are left to the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from dedupe_at_scale.kernels.hashing import FNV_OFFSET, FNV_PRIME, MULTIPLIER

EMPTY = np.uint64(0)
MAX_PIECE_BYTES = 4096


@dataclass
class BpeTables:
    """A tokenizer.json's BPE model as arrays: each byte's token id, per
    mergeable pair (an open-addressing table) its rank and its result, and
    for ignore_merges the vocabulary's byte strings by hash."""

    byte_ids: np.ndarray  # int64[256]
    pair_keys: np.ndarray  # uint64, EMPTY where free
    pair_rank: np.ndarray  # int64
    pair_new: np.ndarray  # int64
    ignore_merges: bool
    vocab_hashes: np.ndarray  # uint64, sorted
    vocab_start: np.ndarray  # int64: each hashed entry's bytes in vocab_bytes
    vocab_end: np.ndarray
    vocab_bytes: np.ndarray  # uint8


def bpe_tables(model: dict[str, Any], byte_level: dict[int, str]) -> BpeTables | None:
    """The tables of a byte-level BPE model spec; None where it holds what
    this kernel does not do (a prefix or suffix, a byte without a token)."""
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None
    vocab: dict[str, int] = model["vocab"]
    if any(byte_level[b] not in vocab for b in range(256)):
        return None
    to_byte = {c: b for b, c in byte_level.items()}
    merges = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]
    size = 1 << max(4, (2 * max(len(merges), 1) - 1).bit_length())
    keys = np.zeros(size, np.uint64)
    ranks = np.zeros(size, np.int64)
    new = np.zeros(size, np.int64)
    mask, shift = size - 1, 64 - (size.bit_length() - 1)
    for rank, (a, b) in enumerate(merges):
        key = ((vocab[a] + 1) << 32) | (vocab[b] + 1)
        slot = ((key * int(MULTIPLIER)) & 0xFFFFFFFFFFFFFFFF) >> shift
        while keys[slot] != EMPTY and keys[slot] != key:
            slot = (slot + 1) & mask
        # A repeated merge takes its last rank, as the library's map does.
        keys[slot], ranks[slot], new[slot] = key, rank, vocab[a + b]
    ignore = bool(model.get("ignore_merges"))
    entries = [bytes(to_byte[c] for c in token) for token in vocab] if ignore else []
    hashes = np.array([_fnv(e) for e in entries], np.uint64)
    order = np.argsort(hashes, kind="stable")
    lengths = np.array([len(entries[i]) for i in order], np.int64)
    ends = np.cumsum(lengths)
    return BpeTables(
        np.array([vocab[byte_level[b]] for b in range(256)], np.int64),
        keys, ranks, new, ignore, hashes[order], ends - lengths, ends,
        np.frombuffer(b"".join(entries[i] for i in order), np.uint8).copy(),
    )  # fmt: skip


def _fnv(data: bytes) -> int:
    h = int(FNV_OFFSET)
    for byte in data:
        h = ((h ^ byte) * int(FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    return h


def count_tokens(
    tables: BpeTables, data: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Tokens of each piece data[starts[i]:ends[i]]; -1 for a piece over
    MAX_PIECE_BYTES."""
    t = tables
    return _count(data, starts.astype(np.int64), ends.astype(np.int64), t.byte_ids, t.pair_keys,
                  t.pair_rank, t.pair_new, t.ignore_merges, t.vocab_hashes, t.vocab_start,
                  t.vocab_end, t.vocab_bytes)  # fmt: skip


@numba.njit(cache=True)
def _merge_rank(keys, ranks, new, shift, a, b):
    """(rank, result) of merging tokens a and b, or (-1, -1)."""
    key = (np.uint64(a + 1) << np.uint64(32)) | np.uint64(b + 1)
    mask = len(keys) - 1
    slot = np.int64((key * MULTIPLIER) >> shift)
    while keys[slot] != EMPTY:
        if keys[slot] == key:
            return ranks[slot], new[slot]
        slot = (slot + 1) & mask
    return -1, -1


@numba.njit(cache=True)
def _in_vocab(data, start, end, hashes, v_start, v_end, v_bytes):
    h = FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(data[i])) * FNV_PRIME
    at = np.searchsorted(hashes, h)
    while at < len(hashes) and hashes[at] == h:
        length = v_end[at] - v_start[at]
        if length == end - start:
            same = True
            for k in range(length):
                if v_bytes[v_start[at] + k] != data[start + k]:
                    same = False
                    break
            if same:
                return True
        at += 1
    return False


@numba.njit(cache=True)
def _count(data, starts, ends, byte_ids, keys, ranks, new, ignore_merges, hashes, v_start,
           v_end, v_bytes):  # fmt: skip
    out = np.empty(len(starts), np.int64)
    ids = np.empty(MAX_PIECE_BYTES, np.int64)
    rank = np.empty(MAX_PIECE_BYTES, np.int64)  # of the pair (ids[j], ids[j + 1]); -1: none
    result = np.empty(MAX_PIECE_BYTES, np.int64)
    bits = 0
    while (1 << bits) < len(keys):
        bits += 1
    shift = np.uint64(64 - bits)
    for p in range(len(starts)):
        start, end = starts[p], ends[p]
        n = end - start
        if n > MAX_PIECE_BYTES:
            out[p] = -1
            continue
        if ignore_merges and n > 1 and _in_vocab(data, start, end, hashes, v_start, v_end, v_bytes):
            out[p] = 1
            continue
        for j in range(n):
            ids[j] = byte_ids[data[start + j]]
        for j in range(n - 1):
            rank[j], result[j] = _merge_rank(keys, ranks, new, shift, ids[j], ids[j + 1])
        while n > 1:
            best = -1
            for j in range(n - 1):
                if rank[j] >= 0 and (best < 0 or rank[j] < rank[best]):
                    best = j
            if best < 0:
                break
            ids[best] = result[best]
            for j in range(best + 1, n - 1):  # the merged-away token's slot closes up
                ids[j] = ids[j + 1]
                rank[j], result[j] = rank[j + 1], result[j + 1]
            n -= 1
            if best > 0:
                rank[best - 1], result[best - 1] = _merge_rank(
                    keys, ranks, new, shift, ids[best - 1], ids[best]
                )
            if best < n - 1:
                rank[best], result[best] = _merge_rank(
                    keys, ranks, new, shift, ids[best], ids[best + 1]
                )
        out[p] = n
    return out
