"""The data behind report.html: small histograms of each staged block
(lengths, and every column a stage or step declares in `distributions`; kept
against rejected), a few rejected texts per rule, the rejections per reason of
the stages that count them, and the rows of each declared pair display, made
while the write pass reads the block and merged on the driver, so the report
never reads the full data on the driver. Saved as OUT/report.json beside the
manifest. No stage or step is named here: what each shows it declares
(report_parts.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import SAMPLE_CHARS, Distribution, ReportPairs, sample_key
from dedupe_at_scale.stages import REGISTRY as STAGES
from dedupe_at_scale.steps import REGISTRY as STEPS

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

FORMAT = "dedupe-at-scale/report-data/v1"
# Fixed bin edges, so blocks merge by adding counts: 0..1 in steps of 0.02
# (ratios), then 20 bins per decade up to 10^8 (counts, lengths).
EDGES = np.concatenate([np.linspace(0.0, 1.0, 51), 10 ** np.arange(0.05, 8.001, 0.05)])
SAMPLES_PER_RULE = 3
REASONS_PER_BLOCK = 1000  # bounds a block's share; the top ones are what the page shows
TOP_REASONS = 20
LENGTH = "length_chars"


@dataclass(frozen=True)
class ReportSpec:
    """What the enabled stages and steps declare for report.json under one
    config, gathered once on the driver and sent to the write tasks."""

    distributions: tuple[Distribution, ...]
    reason_stages: tuple[str, ...]  # stages whose reasons name list entries
    spans: tuple[str, ...]  # columns of a passage a rejected sample shows
    pairs: tuple[ReportPairs, ...]

    @staticmethod
    def of(cfg: JobConfig) -> ReportSpec:
        stages = [s for s in STAGES if s.enabled(cfg)]
        steps = [s for s in STEPS if s.enabled(cfg)]
        length = Distribution(LENGTH, "", "Document length (characters)", unit="characters")
        return ReportSpec(
            distributions=(
                length,
                *(d for unit in [*stages, *steps] for d in unit.distributions(cfg)),
            ),
            reason_stages=tuple(dict.fromkeys(s.stage for s in stages if s.report_reasons)),
            spans=tuple(s.sample_span for s in stages if s.sample_span),
            pairs=tuple(s.pairs for s in steps if s.pairs is not None),
        )


def histogram(values: np.ndarray) -> list[int]:
    """Counts per bin of EDGES (below 0 into the first, beyond into the last);
    NaN (not measured) left out."""
    values = values[~np.isnan(values)]
    index = np.clip(np.searchsorted(EDGES, values, side="right") - 1, 0, len(EDGES) - 2)
    return np.bincount(index, minlength=len(EDGES) - 1).tolist()


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NaN for null."""
    return pc.fill_null(pc.cast(column, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def block_profile(table: pa.Table, cfg: JobConfig, spec: ReportSpec) -> dict[str, Any]:
    """Histograms, rejected samples, reasons and pair rows of one staged
    block (decisions applied)."""
    kept = pc.is_null(table.column(col.STAGE)).to_numpy(zero_copy_only=False)
    histograms = {}
    for d in spec.distributions:
        if not d.column:
            values = _numbers(_lengths(table, cfg.input.document_column))
        elif d.column in table.column_names:
            values = _numbers(table.column(d.column))
        else:
            continue
        histograms[d.name] = {"kept": histogram(values[kept]), "rejected": histogram(values[~kept])}
    return {
        "histograms": histograms, "samples": _samples(table, kept, cfg, spec.spans),
        "reasons": _reasons(table, kept, spec.reason_stages),
        "pairs": {p.key: p.rows(table, cfg) for p in spec.pairs},
    }  # fmt: skip


def _lengths(table: pa.Table, text_column: str) -> pa.ChunkedArray:
    """Each row's text length; a row rejected while annotated has its length
    staged instead of its text (job/annotate.without_rejected_text)."""
    lengths = pc.utf8_length(table.column(text_column))
    if col.REJECTED_CHARS in table.column_names:
        return pc.coalesce(lengths.cast(pa.int64()), table.column(col.REJECTED_CHARS))
    return lengths


def _reasons(
    table: pa.Table, kept: np.ndarray, stages: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """Rejections per reason, for the stages whose reasons name list entries
    (Stage.report_reasons): at most REASONS_PER_BLOCK per stage and block."""
    out: dict[str, dict[str, int]] = {}
    if kept.all():
        return out
    rejected = table.filter(pa.array(~kept))
    for stage in stages:
        mine = rejected.filter(pc.equal(rejected.column(col.STAGE), stage))
        if mine.num_rows:
            counts = pc.value_counts(mine.column(col.REASON)).to_pylist()
            counts.sort(key=lambda c: (-c["counts"], c["values"] or ""))
            out[stage] = {c["values"]: c["counts"] for c in counts[:REASONS_PER_BLOCK]}
    return out


def _samples(
    table: pa.Table, kept: np.ndarray, cfg: JobConfig, span_columns: tuple[str, ...]
) -> list[dict[str, Any]]:
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
    spans: list = [None] * rejected.num_rows
    for name in span_columns:  # the first declared passage a row has
        if name in rejected.column_names:
            spans = [s or t for s, t in zip(spans, rejected.column(name).to_pylist())]
    chosen: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for i, (id_, stage, rule) in enumerate(zip(ids, stages, rules)):
        key = sample_key(id_)
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


def merge_profiles(blocks: list[dict[str, Any]], spec: ReportSpec) -> dict[str, Any]:
    histograms, samples, reasons, pair_rows = _gather(blocks, spec)
    shown = [d for d in spec.distributions if d.name in histograms]
    return {
        "format": FORMAT,
        "edges": EDGES.tolist(),
        "histograms": {
            name: {part: counts.tolist() for part, counts in parts.items()}
            for name, parts in sorted(histograms.items())
        },
        # How each histogram is drawn, in the page's order.
        "distributions": [
            {"name": d.name, "title": d.title, "unit": d.unit, "log_counts": d.log_counts}
            for d in shown
        ],
        "thresholds": {d.name: list(d.marks) for d in shown if d.marks},
        "reasons": {
            stage: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS])
            for stage, c in sorted(reasons.items())
        },
        "samples": [
            {k: v for k, v in s.items() if k != "key"}
            for key in sorted(samples)
            for s in _lowest(samples[key])
        ],
        "pairs": [{"key": p.key, "anchor": p.anchor, "title": p.title} for p in spec.pairs],
        **{p.key: p.merge(pair_rows[p.key]) for p in spec.pairs},
    }


def fold_profiles(blocks: list[dict[str, Any]], spec: ReportSpec) -> dict[str, Any]:
    """Many blocks' profiles as one profile of the same shape, holding all
    that merge_profiles reads of them: histograms and reasons summed, each
    rule's SAMPLES_PER_RULE lowest samples, the pair rows ReportPairs.fold
    keeps. merge_profiles([fold_profiles(a), fold_profiles(b)]) is
    merge_profiles(a + b), so blocks are merged in tasks (job/block_parts.py)."""
    histograms, samples, reasons, pair_rows = _gather(blocks, spec)
    return {
        "histograms": {
            name: {part: counts.tolist() for part, counts in parts.items()}
            for name, parts in histograms.items()
        },
        "samples": [s for rule in samples.values() for s in _lowest(rule)],
        "reasons": {stage: dict(counts) for stage, counts in reasons.items()},
        "pairs": {p.key: p.fold(pair_rows[p.key]) for p in spec.pairs},
    }


def _gather(blocks: list[dict[str, Any]], spec: ReportSpec) -> tuple[dict, dict, dict, dict]:
    """Histograms and reasons summed over the blocks; samples per (stage,
    rule) and pair rows, in block order."""
    histograms: dict[str, dict[str, np.ndarray]] = {}
    samples: dict[tuple[str, str], list[dict]] = {}
    reasons: dict[str, Counter] = {}
    pair_rows: dict[str, list[dict[str, Any]]] = {p.key: [] for p in spec.pairs}
    for block in blocks:
        for stage, counts in block.get("reasons", {}).items():
            reasons.setdefault(stage, Counter()).update(counts)
        for name, parts in block["histograms"].items():
            into = histograms.setdefault(name, {})
            for part, counts in parts.items():
                into[part] = into.get(part, 0) + np.asarray(counts, np.int64)
        for s in block["samples"]:
            samples.setdefault((s["stage"], s["rule"]), []).append(s)
        for key, rows in block.get("pairs", {}).items():
            pair_rows[key] += rows
    return histograms, samples, reasons, pair_rows


def _lowest(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SAMPLES_PER_RULE samples whose key is lowest (stable on ties)."""
    return sorted(samples, key=lambda s: s["key"])[:SAMPLES_PER_RULE]
