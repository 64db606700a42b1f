"""The data behind report.html: small histograms of each staged block
(lengths, tokens, every q_ signal; kept against rejected) and a few rejected
texts per rule, made while the write pass reads the block and merged on the
driver, so the report never reads the full data on the driver. Saved as
OUT/report.json beside the manifest."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages import REGISTRY
from dedupe_at_scale.stages.quality import QualityFilter
from dedupe_at_scale.stages.tokens import N_TOKENS

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

FORMAT = "dedupe-at-scale/report-data/v1"
# Fixed bin edges, so blocks merge by adding counts: 0..1 in steps of 0.02
# (ratios), then 20 bins per decade up to 10^8 (counts, lengths).
EDGES = np.concatenate([np.linspace(0.0, 1.0, 51), 10 ** np.arange(0.05, 8.001, 0.05)])
SAMPLES_PER_RULE = 3
DEDUP_SIMILARITY = "dedup_similarity"
# Stages whose reasons name a list entry (url_filter: the domain and list),
# counted per reason for the report's top table.
REPORT_REASONS = [s.stage for s in REGISTRY if s.report_reasons and s.stage]
REASONS_PER_BLOCK = 1000  # bounds a block's share; the top ones are what the page shows
TOP_REASONS = 20
SAMPLE_CHARS = 600
PAIRS = 6  # duplicate clusters shown side by side (kept and removed member)


def histogram(values: np.ndarray) -> list[int]:
    """Counts per bin of EDGES (below 0 into the first, beyond into the last);
    NaN (not measured) left out."""
    values = values[~np.isnan(values)]
    index = np.clip(np.searchsorted(EDGES, values, side="right") - 1, 0, len(EDGES) - 2)
    return np.bincount(index, minlength=len(EDGES) - 1).tolist()


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NaN for null."""
    return pc.fill_null(pc.cast(column, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def block_profile(table: pa.Table, cfg: JobConfig) -> dict[str, Any]:
    """Histograms and rejected samples of one staged block (decisions applied)."""
    kept = pc.is_null(table.column(col.STAGE)).to_numpy(zero_copy_only=False)
    measures = {"length_chars": pc.utf8_length(table.column(cfg.input.document_column))}
    if N_TOKENS in table.column_names:
        measures["n_tokens"] = table.column(N_TOKENS)
    for name in table.column_names:
        if name.startswith(col.SIGNAL_PREFIX) or name == col.QUALITY_SCORE:
            measures[name] = table.column(name)
    if col.SIMILARITY in table.column_names:
        measures[DEDUP_SIMILARITY] = table.column(col.SIMILARITY)
    histograms = {}
    for name, column in measures.items():
        values = _numbers(column)
        histograms[name] = {"kept": histogram(values[kept]), "rejected": histogram(values[~kept])}
    return {
        "histograms": histograms, "samples": _samples(table, kept, cfg),
        "reasons": _reasons(table, kept), "clusters": _cluster_rows(table, cfg),
    }  # fmt: skip


def _reasons(table: pa.Table, kept: np.ndarray) -> dict[str, dict[str, int]]:
    """Rejections per reason, for the stages whose reasons name list entries
    (Stage.report_reasons): at most REASONS_PER_BLOCK per stage and block."""
    out: dict[str, dict[str, int]] = {}
    if kept.all():
        return out
    rejected = table.filter(pa.array(~kept))
    for stage in REPORT_REASONS:
        mine = rejected.filter(pc.equal(rejected.column(col.STAGE), stage))
        if mine.num_rows:
            counts = pc.value_counts(mine.column(col.REASON)).to_pylist()
            counts.sort(key=lambda c: (-c["counts"], c["values"] or ""))
            out[stage] = {c["values"]: c["counts"] for c in counts[:REASONS_PER_BLOCK]}
    return out


def _samples(table: pa.Table, kept: np.ndarray, cfg: JobConfig) -> list[dict[str, Any]]:
    """A few rejected rows per (stage, rule), the same ones whatever the
    blocks: those whose id hashes lowest. Only when output.rejected_text."""
    if not cfg.output.rejected_text or kept.all():
        return []
    rejected = table.filter(pa.array(~kept))
    ids = pc.cast(rejected.column(cfg.input.id_column), pa.string()).to_pylist()
    stages = rejected.column(col.STAGE).to_pylist()
    rules = rejected.column(col.RULE).to_pylist()
    reasons = rejected.column(col.REASON).to_pylist()
    texts = rejected.column(cfg.input.document_column)
    spans = (
        rejected.column(col.CONTAMINATION_SPAN).to_pylist()
        if col.CONTAMINATION_SPAN in rejected.column_names
        else [None] * rejected.num_rows
    )
    chosen: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for i, (id_, stage, rule) in enumerate(zip(ids, stages, rules)):
        key = _key(id_)
        chosen.setdefault((stage, rule), []).append((key, i))
    out = []
    for (stage, rule), rows in chosen.items():
        for key, i in sorted(rows)[:SAMPLES_PER_RULE]:
            text = texts[i].as_py() or ""
            sample = {"stage": stage, "rule": rule, "id": ids[i], "reason": reasons[i], "key": key}
            out.append(sample | _excerpt(text, spans[i]))
    return out


def _excerpt(text: str, span: list[int] | None) -> dict[str, Any]:
    """SAMPLE_CHARS of the text: its start, or around a marked passage (the
    first eval match of a contaminated document) with where it lies."""
    if span is None:
        return {"text": text[:SAMPLE_CHARS], "truncated": len(text) > SAMPLE_CHARS}
    start = max(0, min(span[0] - SAMPLE_CHARS // 4, len(text) - SAMPLE_CHARS))
    end = start + SAMPLE_CHARS
    return {
        "text": text[start:end], "truncated": len(text) > end, "offset": start,
        "mark": [span[0] - start, min(span[1], end) - start],
    }  # fmt: skip


def _key(value: Any) -> str:
    return hashlib.blake2b(str(value).encode(), digest_size=8).hexdigest()


def _cluster_rows(table: pa.Table, cfg: JobConfig) -> list[dict[str, Any]]:
    """The rows of this block's PAIRS duplicate clusters whose id hashes
    lowest (only when output.rejected_text). Any cluster among the PAIRS
    lowest of the run is among the PAIRS lowest of every block that holds a
    member, so merging finds each chosen cluster whole: its kept member
    (the row whose id is the cluster's) beside a removed one."""
    if not cfg.output.rejected_text or col.CLUSTER not in table.column_names:
        return []
    rows = table.filter(pc.is_valid(table.column(col.CLUSTER)))
    clusters = rows.column(col.CLUSTER).to_pylist()
    keys = [_key(c) for c in clusters]
    chosen = set(sorted(set(keys))[:PAIRS])
    if not chosen:
        return []
    ids = pc.cast(rows.column(cfg.input.id_column), pa.string()).to_pylist()
    texts, rules = rows.column(cfg.input.document_column), rows.column(col.RULE).to_pylist()
    stages = rows.column(col.STAGE).to_pylist()
    similarity = rows.column(col.SIMILARITY).to_pylist()
    out = []
    for i, (cluster, key) in enumerate(zip(clusters, keys)):
        if key in chosen:
            text = texts[i].as_py() or ""
            out.append({
                "key": key, "cluster": cluster, "id": ids[i], "stage": stages[i], "rule": rules[i],
                "similarity": similarity[i], "text": text[:SAMPLE_CHARS],
                "truncated": len(text) > SAMPLE_CHARS,
            })  # fmt: skip
    return out


def duplicate_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per chosen cluster (the PAIRS lowest keys of the run), its kept member
    and the removed member whose id hashes lowest."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    pairs = []
    for key in sorted(by_key)[:PAIRS]:
        members = by_key[key]
        kept = [m for m in members if m["id"] == m["cluster"] and m["stage"] != "consistency"]
        removed = sorted((m for m in members if m["stage"] == "dedup"), key=lambda m: _key(m["id"]))
        if kept and removed:
            pairs.append({"kept": _public(kept[0]), "removed": _public(removed[0])})
    return pairs


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("key", "cluster", "stage")}


def merge_profiles(blocks: list[dict[str, Any]], cfg: JobConfig) -> dict[str, Any]:
    histograms: dict[str, dict[str, np.ndarray]] = {}
    samples: dict[tuple[str, str], list[dict]] = {}
    reasons: dict[str, Counter] = {}
    clusters: list[dict[str, Any]] = []
    for block in blocks:
        for stage, counts in block.get("reasons", {}).items():
            reasons.setdefault(stage, Counter()).update(counts)
        for name, parts in block["histograms"].items():
            into = histograms.setdefault(name, {})
            for part, counts in parts.items():
                into[part] = into.get(part, 0) + np.asarray(counts, np.int64)
        for s in block["samples"]:
            samples.setdefault((s["stage"], s["rule"]), []).append(s)
        clusters += block.get("clusters", [])
    return {
        "format": FORMAT,
        "edges": EDGES.tolist(),
        "histograms": {
            name: {part: counts.tolist() for part, counts in parts.items()}
            for name, parts in sorted(histograms.items())
        },
        "thresholds": thresholds(cfg),
        "reasons": {
            stage: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS])
            for stage, c in sorted(reasons.items())
        },
        "samples": [
            {k: v for k, v in s.items() if k != "key"}
            for key in sorted(samples)
            for s in sorted(samples[key], key=lambda s: s["key"])[:SAMPLES_PER_RULE]
        ],
        "duplicate_pairs": duplicate_pairs(clusters),
    }


def thresholds(cfg: JobConfig) -> dict[str, list[dict[str, Any]]]:
    """Each quality signal's rules: the thresholds the report marks."""
    marks: dict[str, list[dict[str, Any]]] = {}
    if cfg.quality.enabled:
        for group in QualityFilter(cfg.quality).groups:
            for rule in group.rules:
                marks.setdefault(col.SIGNAL_PREFIX + rule.signal, []).append(
                    {"rule": rule.name, "bound": rule.bound, "threshold": rule.threshold}
                )
    if cfg.quality.enabled and cfg.quality.model is not None:
        marks[col.QUALITY_SCORE] = [
            {"rule": "quality_classifier", "bound": "min", "threshold": cfg.quality.min_score}
        ]
    return marks
