"""The report's duplicate pairs (with output.rejected_text): a few clusters,
each with its kept member beside a removed one. Each staged block sends the
rows of its PAIRS clusters whose id hashes lowest; any cluster among the
PAIRS lowest of the run is among the PAIRS lowest of every block holding a
member, so the merge finds each chosen cluster whole, whatever the blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import SAMPLE_CHARS, ReportPairs, sample_key

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

PAIRS = 6  # duplicate clusters shown side by side (kept and removed member)


def cluster_rows(table: pa.Table, cfg: JobConfig) -> list[dict[str, Any]]:
    """The rows of this block's PAIRS duplicate clusters whose id hashes
    lowest (only when output.rejected_text)."""
    if not cfg.output.rejected_text or col.CLUSTER not in table.column_names:
        return []
    rows = table.filter(pc.is_valid(table.column(col.CLUSTER)))
    clusters = rows.column(col.CLUSTER).to_pylist()
    keys = [sample_key(c) for c in clusters]
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
        # Consistency's rejections carry the cluster too; they are not its keeper.
        kept = [m for m in members if m["id"] == m["cluster"] and m["stage"] != "consistency"]
        removed = sorted(
            (m for m in members if m["stage"] == "dedup"), key=lambda m: sample_key(m["id"])
        )
        if kept and removed:
            pairs.append({"kept": _public(kept[0]), "removed": _public(removed[0])})
    return pairs


def chosen_clusters(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the PAIRS lowest cluster keys among `rows`: all that
    duplicate_pairs can pick from them, in their order."""
    chosen = set(sorted({row["key"] for row in rows})[:PAIRS])
    return [row for row in rows if row["key"] in chosen]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("key", "cluster", "stage")}


DUPLICATE_PAIRS = ReportPairs(
    "duplicate_pairs", "pairs", "Duplicate pairs", cluster_rows, duplicate_pairs, chosen_clusters
)
