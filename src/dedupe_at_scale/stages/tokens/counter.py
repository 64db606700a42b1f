"""Token counts of a batch of texts with a Hugging Face `tokenizers`
tokenizer: what `encode(text, add_special_tokens=False)` gives, exactly.

Byte-level BPE tokenizers whose pre-tokenizer is GPT-2's (ByteLevel with
its regex) or Llama 3's (a Split by its pattern, then ByteLevel without
regex) are counted by pretokens.py at native speed, each new piece once by
the model's merges in numba (bpe.py; the library's model for what it cannot
run); a normalizer (Qwen's NFC, ...) is the
tokenizer's own, run on each text first. Any other tokenizer, and any text
holding one of its added tokens, goes through `encode_batch` (the reference,
slower).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.stages.base import read_only, string_buffers
from dedupe_at_scale.stages.tokens.bpe import bpe_tables, count_tokens
from dedupe_at_scale.stages.tokens.pretokens import CL100K, GPT2, count_pieces, distinct, insert

CACHE_SLOTS = 1 << 21  # 24 MB per worker; holds up to a million pieces
CHUNK_BYTES = 1 << 22  # bytes per kernel call (bounds the miss arrays)


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of bytes to printable characters."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    mapping = {b: chr(b) for b in keep}
    mapping.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return mapping


BYTE_LEVEL = _byte_to_unicode()


# Llama 3's Split pattern (GPT-4's cl100k), and the variant with single digits,
# as tokenizer.json spells them: pattern -> digits per number piece.
_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}%s"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLIT_PATTERNS = {_LLAMA3 % "{1,3}": 3, _LLAMA3 % "": 1}


def with_llama3_pretokenizer(tokenizer_json: str) -> str:
    """A byte-level BPE's tokenizer.json with Llama 3's pre-tokenizer in front
    and its ignore_merges: how benchmarks exercise that path without a Llama 3
    download."""
    spec = json.loads(tokenizer_json)
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": _LLAMA3 % "{1,3}"}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False},
        ],
    }  # fmt: skip
    spec["model"]["ignore_merges"] = True
    return json.dumps(spec)


def pretokenizer(spec: dict[str, Any]) -> tuple[tuple[int, int] | None, str | None]:
    """(pattern, digits) for pretokens.count_pieces when it can count a
    tokenizer.json exactly; else None and why not."""
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("dropout"):
        return None, f"its model is {model.get('type')!r}, not BPE without dropout"
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        if pre.get("add_prefix_space"):
            return None, "its ByteLevel adds a prefix space"
        return (GPT2, 0), None
    parts = pre.get("pretokenizers") or []
    if pre.get("type") == "Sequence" and len(parts) == 2:
        split, byte_level = parts
        pattern = (split.get("pattern") or {}).get("Regex")
        if (
            split.get("type") == "Split" and pattern in SPLIT_PATTERNS
            and split.get("behavior") == "Isolated" and not split.get("invert")
            and byte_level.get("type") == "ByteLevel" and not byte_level.get("use_regex", True)
            and not byte_level.get("add_prefix_space")
        ):  # fmt: skip
            return (CL100K, SPLIT_PATTERNS[pattern]), None
    return None, (
        f"its pre-tokenizer is {pre.get('type')!r}, neither GPT-2's ByteLevel nor "
        "Llama 3's Split and ByteLevel"
    )


# Normalizers that leave ASCII text as it is (Unicode forms, accent stripping).
ASCII_INVARIANT = {"NFC", "NFD", "NFKC", "NFKD", "StripAccents"}


def ascii_invariant(normalizer: dict[str, Any] | None) -> bool:
    """Whether a tokenizer.json normalizer leaves every ASCII text unchanged."""
    if not normalizer:
        return True
    if normalizer.get("type") == "Sequence":
        return all(ascii_invariant(n) for n in normalizer.get("normalizers") or [])
    return normalizer.get("type") in ASCII_INVARIANT


def reference_counts(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """The tokenizer's own count of each text."""
    encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
    return np.array([len(e.ids) for e in encoded], np.int64)


class TokenCounter:
    """Counts tokens of Arrow string arrays; holds its piece cache between
    batches (one per worker process)."""

    def __init__(self, tokenizer_json: str, classes: np.ndarray | None):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        spec = json.loads(tokenizer_json)
        self.pattern, self.problem = pretokenizer(spec)
        if classes is None:
            self.pattern, self.problem = None, "no code point table"
        # Read-only as the job's shared copy is: one compiled kernel, not two.
        self.classes = None if classes is None else read_only(classes)
        # The texts the pre-tokenizer sees are the normalizer's output.
        self.normalizer = self.tokenizer.normalizer if spec.get("normalizer") else None
        self.ascii_invariant = ascii_invariant(spec.get("normalizer"))
        self.added = [t["content"] for t in spec.get("added_tokens") or [] if t.get("content")]
        self.keys = np.zeros(CACHE_SLOTS, np.uint64)
        self.values = np.zeros(CACHE_SLOTS, np.int64)
        self.filled = np.zeros(1, np.int64)
        # New pieces are counted by the BPE kernel, where it can run this model.
        self.bpe = bpe_tables(spec["model"], BYTE_LEVEL) if self.fast else None

    @property
    def fast(self) -> bool:
        return self.problem is None

    def count(self, texts: pa.Array) -> np.ndarray:
        """Tokens per text (0 for null)."""
        texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        n = len(texts)
        counts = np.zeros(n, np.int64)
        if not self.fast:
            slow = np.ones(n, bool)
        else:
            seen = texts if self.normalizer is None else self._normalized(texts)
            # An added token may match the raw text or the normalized one.
            slow = self._has_added_token(texts)
            if seen is not texts:
                slow |= self._has_added_token(seen)
            if (~slow).any():
                data, offsets = string_buffers(seen)
                counts[~slow] = self._fast_counts(data, offsets, np.flatnonzero(~slow))
        if slow.any():
            rows = np.flatnonzero(slow)
            strings = pc.fill_null(texts.take(pa.array(rows)), "").to_pylist()
            counts[rows] = reference_counts(self.tokenizer, strings)
        return counts

    def _normalized(self, texts: pa.Array) -> pa.Array:
        """What the tokenizer's normalizer makes of each text (nulls as "");
        ASCII texts are skipped where the normalizer leaves ASCII as it is."""
        normalize = self.normalizer.normalize_str
        texts = pc.fill_null(texts, "")
        if not self.ascii_invariant:
            return pa.array([normalize(s) for s in texts.to_pylist()], pa.large_string())
        changed = pc.invert(pc.string_is_ascii(texts))
        rows = texts.filter(changed).to_pylist()
        return pc.replace_with_mask(
            texts, changed, pa.array([normalize(s) for s in rows], texts.type)
        )

    def _has_added_token(self, texts: pa.Array) -> np.ndarray:
        found = np.zeros(len(texts), bool)
        for content in self.added:
            hit = pc.match_substring(texts, content)
            found |= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
        return found

    def _fast_counts(self, data: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        counts = np.zeros(len(rows), np.int64)
        sizes = offsets[rows + 1] - offsets[rows]
        cumulative = np.cumsum(sizes)
        start = 0
        while start < len(rows):
            # A chunk of rows of at most CHUNK_BYTES (or one longer row).
            before = cumulative[start - 1] if start else 0
            end = max(start + 1, int(np.searchsorted(cumulative, before + CHUNK_BYTES)))
            chunk = rows[start:end]
            room = int(sizes[start:end].sum()) + 1
            miss_row = np.empty(room, np.int64)
            miss_start, miss_end = np.empty(room, np.int64), np.empty(room, np.int64)
            miss_key = np.empty(room, np.uint64)
            found, m = count_pieces(
                data, offsets, chunk, self.classes, self.keys, self.values,
                miss_row, miss_start, miss_end, miss_key, *self.pattern,
            )  # fmt: skip
            if m:
                found += self._resolve(
                    data, miss_row[:m], miss_start[:m], miss_end[:m], miss_key[:m], len(chunk)
                )
            counts[start:end] = found
            start = end
        return counts

    def _resolve(self, data, row, start, end, key, n_rows) -> np.ndarray:
        """Counts of the pieces the cache lacked, from the BPE kernel (bpe.py)
        or the library's model; cached."""
        first, inverse = distinct(key)
        unique = key[first]
        if self.bpe is not None:
            counts = count_tokens(self.bpe, data, start[first], end[first])
            by_library = np.flatnonzero(counts < 0)  # the pieces too long for the kernel
        else:
            counts, by_library = np.zeros(len(first), np.int64), np.arange(len(first))
        tokenize = self.tokenizer.model.tokenize
        for k in by_library:
            i = first[k]
            piece = data[start[i] : end[i]].tobytes().decode("latin-1").translate(BYTE_LEVEL)
            counts[k] = len(tokenize(piece))
        insert(self.keys, self.values, self.filled, unique, counts)
        return np.bincount(row, weights=counts[inverse], minlength=n_rows).astype(np.int64)
