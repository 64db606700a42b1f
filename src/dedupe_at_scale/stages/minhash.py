"""Text normalization, exact hashes, MinHash signatures and LSH band keys.

The signature step is a numba kernel (kernels/minhash.py) over the Arrow
buffers of a string array: no Python object per shingle. Shingles are word n-grams of the normalized text,
or character n-grams for scripts written without spaces (zh, ja, th, ...).
A document with fewer tokens than n becomes one shingle of all its tokens, so
short documents only collide with identical short documents.

Permutations are multiply-shift hashes of a 64-bit shingle hash:
h_i(x) = (a_i * x + b_i) mod 2^64 >> 32, a_i odd; the minimum per i is kept as
uint32. P(candidate | Jaccard s) = 1 - (1 - s^r)^b for b bands of r rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.kernels.codepoints import utf32
from dedupe_at_scale.kernels.minhash import (
    band_kernel,
    hash_kernel,
    raw_signature_kernel,
    signature_kernel,
    sparse_space_kernel,
)
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, string_buffers, take_rows

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.dedup.config import DedupConfig

EMPTY = np.uint32(0xFFFFFFFF)


@dataclass(frozen=True)
class MinHashParams:
    num_perm: int = 128
    ngram_size: int = 5
    char_ngram_size: int = 5
    bands: int = 16
    rows: int = 8
    seed: int = 1

    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, 2**63, size=self.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(
            1
        )
        b = rng.integers(0, 2**63, size=self.num_perm, dtype=np.uint64)
        return a, b


def params_for(cfg: DedupConfig) -> MinHashParams:
    """Signature and banding parameters of a dedup config."""
    if cfg.bands is not None and cfg.rows is not None:
        bands, rows = cfg.bands, cfg.rows
    else:
        bands, rows = choose_bands(cfg.threshold, cfg.num_perm, cfg.band_selection)
    return MinHashParams(cfg.num_perm, cfg.ngram_size, cfg.char_ngram_size, bands, rows, cfg.seed)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """The LSH S-curve: chance that a pair of this Jaccard shares a band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


@functools.lru_cache(maxsize=32)
def choose_bands(
    threshold: float,
    num_perm: int,
    rule: str = "recall",
    min_recall: float = 0.99,
    margin: float = 0.05,
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm.

    "recall": the steepest curve (largest r) that still finds a pair of Jaccard
    threshold + margin with probability >= min_recall; candidates below the
    threshold are then removed by signature verification.
    "balanced": datasketch's choice, minimising equal-weighted false-positive
    and false-negative areas under the S-curve."""
    if rule == "balanced":
        return _balanced_bands(threshold, num_perm)
    target = min(threshold + margin, 1.0)
    best = None
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(target, bands, rows) >= min_recall:
            best = (bands, rows)
    return best or (num_perm, 1)


def _balanced_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    xs_fp = np.linspace(0.0, threshold, 1001)
    xs_fn = np.linspace(threshold, 1.0, 1001)
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1 - (1 - xs_fp**rows) ** bands, xs_fp)
            fn = np.trapezoid((1 - xs_fn**rows) ** bands, xs_fn)
            error = 0.5 * fp + 0.5 * fn
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


KEPT = r"\pL\pN\s"  # normalize() turns runs of anything else into a space


def normalize(texts: pa.Array, unicode_form: str | None = None) -> pa.Array:
    """Lower case with punctuation turned into spaces (optionally Unicode
    normalized first). Whitespace runs are left for the kernel, which treats
    any run as one separator."""
    out = pc.utf8_normalize(texts, unicode_form) if unicode_form else texts
    return pc.replace_substring_regex(pc.utf8_lower(out), f"[^{KEPT}]+", " ")


@functools.cache
def word_tables() -> tuple[np.ndarray, np.ndarray] | None:
    """(is_word, lower) per code point, for text_signatures: what Arrow's
    utf8_lower makes of each code point, and whether normalize()'s regex
    keeps that as part of a word (a letter or digit, not a space). From the
    installed Arrow itself, once per process (0.1 s); None if a lower case
    is not one code point (the kernel could not follow it)."""
    cps = np.r_[np.arange(0xD800), np.arange(0xE000, 0x110000)].astype(np.uint32)
    sizes = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int32)
    data = utf32(cps).encode()
    chars = pa.StringArray.from_buffers(len(cps), pa.py_buffer(offsets), pa.py_buffer(data))
    lowered = pc.utf8_lower(chars)
    lengths = pc.utf8_length(lowered)
    if pc.min(lengths).as_py() != 1 or pc.max(lengths).as_py() != 1:
        return None
    kept = pc.match_substring_regex(lowered, f"^[{KEPT}]$")
    space = pc.match_substring_regex(lowered, r"^\s$")
    is_word = np.zeros(0x110000, np.bool_)
    is_word[cps] = pc.and_(kept, pc.invert(space)).to_numpy(zero_copy_only=False)
    lower = np.arange(0x110000, dtype=np.int32)
    text = lowered.buffers()[2].to_pybytes().decode()
    lower[cps] = utf32(text)
    return is_word, lower


def sparse_spaces(texts: pa.Array, max_ratio: float = 0.05) -> np.ndarray:
    """True for texts with fewer than one space per 1 / max_ratio characters:
    scripts written without spaces (Chinese, Japanese, Thai, ...); False for
    nulls. One kernel pass: Arrow's count_substring and utf8_length took a
    quarter of the signatures' time on real text."""
    data, offsets = string_buffers(texts)
    out = np.empty(len(texts), dtype=np.bool_)
    sparse_space_kernel(data, offsets, max_ratio, out)
    if texts.null_count:
        out &= pc.is_valid(texts).to_numpy(zero_copy_only=False)
    return out


def signatures(
    normalized: pa.Array, char_mode: np.ndarray, params: MinHashParams
) -> tuple[np.ndarray, np.ndarray]:
    """(n, num_perm) uint32 MinHash signatures and (n, 2) uint64 hashes of the
    token sequence (the exact-duplicate key) of normalized texts. Texts with no
    token get an all-EMPTY signature."""
    return _sign(signature_kernel, normalized, char_mode, params)


def text_signatures(
    texts: pa.Array, char_mode: np.ndarray, params: MinHashParams, unicode_form: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """signatures(normalize(texts, unicode_form), ...) in one pass over the
    texts (kernels.minhash.raw_signature_kernel), without the normalized copy."""
    tables = word_tables()
    if tables is None:
        return signatures(normalize(texts, unicode_form), char_mode, params)
    if unicode_form:
        texts = pc.utf8_normalize(texts, unicode_form)
    return _sign(raw_signature_kernel, texts, char_mode, params, *tables)


def _sign(kernel, texts: pa.Array, char_mode: np.ndarray, params: MinHashParams,
          *tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Run a signature kernel (its code-point tables, if it takes any, after
    the modes) over the texts' buffers."""
    data, offsets = string_buffers(texts)
    a, b = params.permutations()
    n = len(texts)
    sigs = np.empty((n, params.num_perm), dtype=np.uint32)
    exact = np.empty((n, 2), dtype=np.uint64)
    kernel(
        data, offsets, np.ascontiguousarray(char_mode, dtype=np.bool_), *tables,
        params.ngram_size, params.char_ngram_size, a, b, sigs, exact,
    )  # fmt: skip
    return sigs, exact


def string_hashes(texts: pa.Array, seed: int = 7) -> np.ndarray:
    """A 64-bit hash of each string's bytes (nulls hash like empty strings)."""
    data, offsets = string_buffers(texts)
    out = np.empty(len(texts), dtype=np.uint64)
    hash_kernel(data, offsets, np.uint64(seed), out)
    return out


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys; the band index is mixed in, so keys of
    different bands never meet in one bucket."""
    out = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    band_kernel(np.ascontiguousarray(sigs), bands, rows, out)
    return out


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal signature values, row by row."""
    return (sig_a == sig_b).mean(axis=-1)


class MinHashStage(Stage):
    """`dedup` section, per document: the exact-text hash and the MinHash
    signature of every kept document, for the global dedup step. Space-less
    scripts (quality.unsegmented_languages, or sparse spaces when no language
    is known) are shingled by characters."""

    name = "minhash"
    stage = None  # rejects nothing; the dedup step decides

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.params = params_for(cfg.dedup)
        form = cfg.dedup.unicode_normalization
        self.form = None if form == "none" else form
        self.unsegmented = frozenset(cfg.quality.unsegmented_languages)
        self.languages_known = cfg.langid.enabled
        self.min_score = cfg.langid.min_score
        self.view = stage_views(cfg)["dedup"]

    def warm_up(self) -> None:
        text = pa.array(["warm up the kernel"], pa.string())
        sparse = sparse_spaces(text)  # for texts whose language is unknown or unsure
        for char_mode in (sparse, ~sparse):
            text_signatures(text, char_mode, self.params, self.form)

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.dedup.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        width = params_for(cfg.dedup).num_perm
        return [
            pa.field(col.EXACT_HI, pa.uint64()),
            pa.field(col.EXACT_LO, pa.uint64()),
            pa.field(col.MINHASH, pa.list_(pa.uint32(), width)),
        ]

    def __call__(self, batch: Batch) -> StageResult:
        n, width = batch.num_rows, self.params.num_perm
        exact = np.zeros((n, 2), dtype=np.uint64)
        sigs = np.zeros((n, width), dtype=np.uint32)
        active = batch.active()
        if len(active):
            texts = take_rows(batch.text_array(self.view), active)
            if self.languages_known:
                labels, scores = (take_rows(a, active) for a in batch.languages(self.view))
                languages = labels.to_pylist()
                char_mode = np.array([lang in self.unsegmented for lang in languages], dtype=bool)
                # A label below langid.min_score (possible for a prompt, whose
                # language rejects nothing) does not decide: the spaces do.
                unsure = pc.fill_null(pc.less(scores, self.min_score), True)
                unsure = unsure.to_numpy(zero_copy_only=False)
                char_mode = np.where(unsure, sparse_spaces(texts), char_mode)
            else:
                # No language known: judge the script by how rarely spaces occur.
                char_mode = sparse_spaces(texts)
            sigs[active], exact[active] = text_signatures(texts, char_mode, self.params, self.form)
        flat = pa.array(sigs.reshape(-1), pa.uint32())
        return StageResult(
            columns={
                col.EXACT_HI: pa.array(exact[:, 0]),
                col.EXACT_LO: pa.array(exact[:, 1]),
                col.MINHASH: pa.FixedSizeListArray.from_arrays(flat, width),
            }
        )
