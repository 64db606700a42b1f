"""`decontaminate` section: documents that contain benchmark test items.

Method (GPT-3, Brown et al. 2020, appendix C): words are runs of letters and
digits, lower-cased (dedup's normalization: case and punctuation do not
matter); every n consecutive words (n = 13) are hashed to 64 bits. The eval
sets (read by `evalsets.py`) give one index, built once on the driver
(`DecontaminateStage.prepare`) and shipped to the workers through Ray's object store; a document is looked up
n-gram by n-gram in an open-addressing table by a numba kernel over its
UTF-8 buffer. Items shorter than n words are matched whole. N-grams found in
more than max_item_frequency items are boilerplate and ignored.

A document is contaminated when it holds at least min_matches distinct eval
n-grams, or at least min_item_share of one item's n-grams. `drop` rejects
it; `cut` removes each match with cut_margin characters around it and keeps
the pieces of at least min_piece_chars (the document is dropped when more
than max_pieces, or none, remain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from dedupe_at_scale import columns as col
from dedupe_at_scale.formats import stage_views
from dedupe_at_scale.kernels.codepoints import unicode_tables
from dedupe_at_scale.kernels.ngram_index import (
    fill_key_table,
    item_ngram_keys,
    match_ngrams,
    ngram_powers,
)
from dedupe_at_scale.sections import Require, Section, SpecPath, View
from dedupe_at_scale.stages.base import (
    Batch,
    Stage,
    StageResult,
    read_only,
    rejections,
    scatter,
    string_buffers,
)
from dedupe_at_scale.stages.decontaminate.evalsets import EvalItem, items_digest, read_eval_items

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.stages.base import Files

log = logging.getLogger(__name__)

RESOURCE = "decontaminate"  # the index's name among the annotation's shared resources


class EvalSourceConfig(Section):
    """One eval set: a Parquet or JSONL file (or directory of them), local or
    any fsspec URL; `fields` are joined into each item's text."""

    name: str = ""
    uri: SpecPath = ""
    fields: list[str] = Field(default_factory=lambda: ["question"])
    id_field: str | None = None  # null: the row number


class DecontaminateConfig(Section):
    """Benchmark decontamination: word n-grams of eval items found in documents
    (stages/decontaminate/)."""

    enabled: bool = False
    sources: list[EvalSourceConfig] = Field(default_factory=list)
    ngram_size: int = 13  # GPT-3 (Brown et al. 2020, appendix C)
    # Contaminated: at least min_matches distinct eval n-grams, or (when set)
    # at least this share of one eval item's n-grams.
    min_matches: int = 1
    min_item_share: float | None = None
    # N-grams in more eval items than this are boilerplate ("which of the
    # following"): ignored, and counted.
    max_item_frequency: int = 10
    # Items shorter than ngram_size words are matched whole; shorter than this, ignored.
    min_item_words: int = 4
    # drop: to rejected/; cut: remove each match plus cut_margin characters on
    # both sides, keep pieces of at least min_piece_chars, drop the document
    # if more than max_pieces remain or none does (text rows only).
    action: Literal["drop", "cut"] = "drop"
    cut_margin: int = 200
    min_piece_chars: int = 200
    max_pieces: int = 10
    # Post-training rows: the part searched (auto: the conversation).
    text: View = "auto"

    def check(self, job: JobConfig, require: Require) -> None:
        text_rows = job.input.format == "text"
        if text_rows:
            require(
                self.text == "auto", "decontaminate.text", "chooses a part of post-training rows"
            )
        if not self.enabled:
            return
        require(bool(self.sources), "decontaminate.sources", "must list at least one eval set")
        names = [s.name for s in self.sources]
        for i, source in enumerate(self.sources):
            key = f"decontaminate.sources[{i}]"
            require(bool(source.name), f"{key}.name", "must be set")
            require(names.count(source.name) == 1, f"{key}.name", f"repeats '{source.name}'")
            require(bool(source.uri), f"{key}.uri", "must be set")
            require(bool(source.fields), f"{key}.fields", "must name at least one field")
        require(self.ngram_size >= 1, "decontaminate.ngram_size", "must be >= 1")
        require(self.min_matches >= 1, "decontaminate.min_matches", "must be >= 1")
        if self.min_item_share is not None:
            require(
                0 < self.min_item_share <= 1,
                "decontaminate.min_item_share",
                "must be within (0, 1]",
            )
        require(self.max_item_frequency >= 1, "decontaminate.max_item_frequency", "must be >= 1")
        require(self.min_item_words >= 1, "decontaminate.min_item_words", "must be >= 1")
        require(self.cut_margin >= 0, "decontaminate.cut_margin", "must be >= 0")
        require(self.max_pieces >= 1, "decontaminate.max_pieces", "must be >= 1")
        require(
            self.action == "drop" or text_rows, "decontaminate.action",
            "cut rewrites text in place, which post-training rows cannot take; use drop",
        )  # fmt: skip


@dataclass
class EvalIndex:
    """The eval sets' n-grams: an open-addressing table from key to its index
    in `keys`, and per key the items holding it (CSR: item_at[key_start[k]:
    key_start[k + 1]]). Plain numpy arrays: Ray ships them zero-copy."""

    n: int
    keys: np.ndarray
    table: np.ndarray
    values: np.ndarray
    bits: np.ndarray  # the prefilter
    shift: np.uint64
    key_start: np.ndarray
    item_at: np.ndarray
    item_keys: np.ndarray  # distinct kept keys per item
    item_source: np.ndarray  # source number per item
    item_ids: list[str]
    sources: list[str]
    short_lengths: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)
    digest: str = ""  # of the items, for the run's fingerprint

    def nbytes(self) -> int:
        arrays = (self.keys, self.table, self.values, self.bits, self.key_start, self.item_at,
                  self.item_keys, self.item_source)  # fmt: skip
        return int(sum(a.nbytes for a in arrays)) + sum(len(i) + 49 for i in self.item_ids)


def build_index(items: list[EvalItem], cfg: DecontaminateConfig) -> EvalIndex:
    """The index of `items` (every source's), and per source its numbers."""
    flags, lower = unicode_tables()
    sources = list(dict.fromkeys(i.source for i in items))
    number = {s: k for k, s in enumerate(sources)}
    texts = pa.array([t for i in items for t in i.texts], pa.string())
    field_item = np.repeat(np.arange(len(items)), [len(i.texts) for i in items]).astype(np.int64)
    data, offsets = string_buffers(texts)
    n = cfg.ngram_size
    powers = ngram_powers(n)
    keys, owner, words = item_ngram_keys(data, offsets, flags, lower, n, cfg.min_item_words, powers)
    owner = field_item[owner]  # field -> item
    # One (key, item) pair per item and key; then how many items hold each key.
    order = np.lexsort((owner, keys))
    keys, owner = keys[order], owner[order]
    distinct = np.r_[True, (keys[1:] != keys[:-1]) | (owner[1:] != owner[:-1])] if len(keys) else []
    keys, owner = keys[distinct], owner[distinct]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, int)
    counts = np.diff(np.r_[starts, len(keys)])
    unique_keys = keys[starts]
    frequent = counts > cfg.max_item_frequency
    kept_keys = unique_keys[~frequent]
    kept_counts = counts[~frequent]
    item_at = owner[np.repeat(~frequent, counts)].astype(np.int64)
    key_start = np.r_[0, np.cumsum(kept_counts)].astype(np.int64)
    size = 1 << max(4, int(2 * max(len(kept_keys), 1) - 1).bit_length())
    table = np.zeros(size, np.uint64)
    values = np.full(size, -1, np.int64)
    bit_count = 1 << max(6, int(16 * max(len(kept_keys), 1) - 1).bit_length())
    bits = np.zeros(bit_count // 64, np.uint64)
    shift = np.uint64(64 - (bit_count.bit_length() - 1))
    fill_key_table(kept_keys, table, values, bits, shift)
    item_keys = np.bincount(item_at, minlength=len(items)).astype(np.int64)
    item_source = np.array([number[i.source] for i in items], np.int64)
    whole = (words < n) & (words >= cfg.min_item_words)  # per field
    short = np.unique(words[whole]).astype(np.int64)
    has_whole = np.bincount(field_item[whole], minlength=len(items)) > 0
    has_keys = np.bincount(owner, minlength=len(items)) > 0
    summary = {}
    for s, name in enumerate(sources):
        mine = item_source == s
        summary[name] = {
            "items": int(mine.sum()),
            "items_with_a_field_matched_whole": int((mine & has_whole).sum()),
            "items_too_short": int((mine & ~has_keys).sum()),
            "ngrams": int(item_keys[mine].sum()),
        }
    summary_all = {
        "ngram_size": n,
        "ngrams": int(len(kept_keys)),
        "frequent_ngrams_ignored": int(frequent.sum()),
        "sources": summary,
    }
    # The kernel's arrays read-only, as Ray's object store hands them to the
    # workers: one compiled kernel wherever the index is used.
    table, values, bits, short = (read_only(a) for a in (table, values, bits, short))
    index = EvalIndex(
        n, kept_keys, table, values, bits, shift, key_start, item_at, item_keys, item_source,
        [i.item_id for i in items], sources, short, {},
    )  # fmt: skip
    index.summary = {**summary_all, "index_bytes": index.nbytes()}
    index.digest = items_digest(items)
    return index


@dataclass
class Hit:
    """A contaminated document: its best item, the distinct n-grams matched,
    and the spans (code points) of every match."""

    source: str
    item_id: str
    matches: int
    spans: list[tuple[int, int]]


def find_hits(
    texts: pa.Array, rows: np.ndarray, index: EvalIndex, cfg: DecontaminateConfig
) -> dict[int, Hit]:
    """Contaminated rows among `rows` of `texts`, by the rule in the module docstring."""
    if len(index.keys) == 0 or len(rows) == 0:
        return {}
    flags, lower = unicode_tables()
    data, offsets = string_buffers(texts)
    found = match_ngrams(
        data, offsets, np.asarray(rows, np.int64), flags, lower, index.n, index.short_lengths,
        ngram_powers(index.n), index.table, index.values, index.bits, index.shift,
    )  # fmt: skip
    hits: dict[int, Hit] = {}
    if len(found) == 0:
        return hits
    order = np.lexsort((found[:, 2], found[:, 0]))
    found = found[order]
    bounds = np.flatnonzero(np.r_[True, found[1:, 0] != found[:-1, 0], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        rows_found = found[lo:hi]
        keys = np.unique(rows_found[:, 1])
        per_item: dict[int, int] = {}
        for k in keys.tolist():
            for item in index.item_at[index.key_start[k] : index.key_start[k + 1]].tolist():
                per_item[item] = per_item.get(item, 0) + 1
        best = min(per_item, key=lambda i: (-per_item[i], i))
        share = max(c / max(index.item_keys[i], 1) for i, c in per_item.items())
        contaminated = len(keys) >= cfg.min_matches or (
            cfg.min_item_share is not None and share >= cfg.min_item_share
        )
        if contaminated:
            spans = [(int(s), int(e)) for s, e in rows_found[:, 2:4].tolist()]
            hits[int(rows_found[0, 0])] = Hit(
                index.sources[index.item_source[best]], index.item_ids[best], len(keys), spans
            )
    return hits


def cut(text: str, spans: list[tuple[int, int]], cfg: DecontaminateConfig) -> list[str]:
    """The pieces of `text` left once every span, widened by cut_margin
    characters, is removed; pieces shorter than min_piece_chars are dropped."""
    pieces, at = [], 0
    for start, end in sorted(spans):
        start, end = max(0, start - cfg.cut_margin), min(len(text), end + cfg.cut_margin)
        if start > at:
            pieces.append(text[at:start])
        at = max(at, end)
    pieces.append(text[at:])
    return [p.strip() for p in pieces if len(p.strip()) >= cfg.min_piece_chars]


SPAN = pa.list_(pa.int32(), 2)


def first_passage(spans: list[tuple[int, int]]) -> list[int]:
    """[start, end) of the first run of overlapping or touching match spans."""
    ordered = sorted(spans)
    start, end = ordered[0]
    for a, b in ordered[1:]:
        if a > end:
            break
        end = max(end, b)
    return [start, end]


class DecontaminateStage(Stage):
    name = stage = "decontaminate"
    needs = (RESOURCE,)
    sample_span = col.CONTAMINATION_SPAN  # a sample shows its first eval match

    def __init__(self, cfg: JobConfig, resources: dict[str, Any]):
        super().__init__(cfg)
        self.section = cfg.decontaminate
        self.index: EvalIndex = resources[RESOURCE]
        self.view = stage_views(cfg)["decontaminate"]
        self.text_rows = cfg.input.format == "text"

    def warm_up(self) -> None:
        find_hits(pa.array(["warm up the kernel"]), np.arange(1), self.index, self.section)

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.decontaminate.enabled

    @staticmethod
    def prepare(cfg: JobConfig, files: Files) -> dict[str, Any]:
        """The eval sets' index, built once on the driver before Ray starts."""
        index = build_index(read_eval_items(cfg.decontaminate, files), cfg.decontaminate)
        log.info("decontamination index: %s", index.summary)
        return {RESOURCE: index}

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [
            pa.field(col.CONTAMINATION_SOURCE, pa.string()),
            pa.field(col.CONTAMINATION_ITEM, pa.string()),
            pa.field(col.CONTAMINATION_MATCHES, pa.int32()),
            pa.field(col.CONTAMINATION_SPAN, SPAN),
        ]

    def __call__(self, batch: Batch) -> StageResult:
        n = batch.num_rows
        texts = batch.text_array(self.view)
        hits = find_hits(texts, batch.active(), self.index, self.section)
        rows = sorted(hits)
        columns = {
            col.CONTAMINATION_SOURCE: scatter(n, rows, [hits[r].source for r in rows], pa.string()),
            col.CONTAMINATION_ITEM: scatter(n, rows, [hits[r].item_id for r in rows], pa.string()),
            col.CONTAMINATION_MATCHES: scatter(
                n, rows, [hits[r].matches for r in rows], pa.int32()
            ),
            # Spans are in the view's text, which is the document's for text rows only.
            col.CONTAMINATION_SPAN: scatter(
                n,
                rows,
                [first_passage(hits[r].spans) for r in rows] if self.text_rows else [],
                SPAN,
            ),
        }
        if not rows:
            return StageResult(columns=columns)
        dropped, reasons, new_text = [], [], None
        if self.section.action == "cut":
            new_text = batch.texts(range(n), self.view)
        for r in rows:
            hit = hits[r]
            text = texts[r].as_py()
            first = min(hit.spans)
            why = (
                f"decontaminate: {hit.source} item {hit.item_id}, {hit.matches} matching "
                f"{self.index.n}-gram(s), first: {text[first[0] : first[1]][:120]!r}"
            )
            if new_text is not None:
                pieces = cut(text, hit.spans, self.section)
                if pieces and len(pieces) <= self.section.max_pieces:
                    new_text[r] = "\n\n".join(pieces)
                    continue
                why += f"; cutting leaves {len(pieces)} pieces of >= {self.section.min_piece_chars} chars"
            dropped.append(r)
            reasons.append(why)
        rule = "contaminated"
        values = [float(hits[r].matches) for r in dropped]
        return StageResult(
            columns=columns,
            rejected=rejections(n, dropped, [rule] * len(dropped), values, reasons),
            text=pa.array(new_text, pa.string()) if new_text is not None else None,
        )


__all__ = ["DecontaminateStage", "EvalIndex", "EvalItem", "build_index", "cut", "find_hits"]
