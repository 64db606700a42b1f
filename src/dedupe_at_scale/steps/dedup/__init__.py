"""`dedup` section: global exact and near-duplicate removal (the step's driver
glue; tasks.py has the Ray tasks, lsh.py and components.py the algorithms)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import Distribution, ReportBars, ReportSection
from dedupe_at_scale.stages.minhash import candidate_probability, params_for
from dedupe_at_scale.steps.base import (
    Decision,
    GlobalStep,
    StagedView,
    StepOutcome,
    StepOutput,
    decision_files,
)
from dedupe_at_scale.steps.dedup.keep import DECISION_SCHEMA, apply_decisions
from dedupe_at_scale.steps.dedup.report_pairs import DUPLICATE_PAIRS
from dedupe_at_scale.steps.dedup.tasks import run_dedup

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import ClusterCheck, FinishedRows

PUBLISHED_COLUMNS = ["id", "cluster_id", "kept", "similarity"]
DUPLICATES = "duplicates"


class Dedup(GlobalStep):
    name = stage = "dedup"
    publishes = (DUPLICATES,)
    pairs = DUPLICATE_PAIRS

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        title = "Duplicates: MinHash similarity to the kept member"
        return [Distribution("dedup_similarity", col.SIMILARITY, title, unit="similarity")]

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        return [
            f"Dedup: {section['exact_duplicates_removed']} exact and {section['near_duplicates_removed']} "
            f"near duplicates removed in {section['clusters']} clusters (see duplicates/)."
        ]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        sizes = section.get("cluster_sizes")
        if sizes is None:
            return []
        x = sorted(int(k) for k in sizes)
        bars = ReportBars(
            "plot-clusters", "Duplicate clusters by size (documents per cluster)",
            [(None, x, [sizes[str(k)] for k in x], "accent")],
            "documents per cluster", "clusters", log_y=True,
        )  # fmt: skip
        note = (
            f"{section['clusters']:,} clusters; {section['exact_duplicates_removed']:,} exact and "
            f"{section['near_duplicates_removed']:,} near duplicates removed."
        )
        return [ReportSection("duplicates", "Duplicate clusters", note, plots=(bars,))]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.dedup.enabled

    @staticmethod
    def trace_lines(output: FinishedRows, doc_id: str, rows: list[dict[str, Any]]) -> list[str]:
        if DUPLICATES not in output.names():
            return []
        mine = output.find(DUPLICATES, "id", doc_id)
        if not mine:
            return ["  duplicates: in no duplicate cluster"]
        cluster = mine[0]["cluster_id"]
        members = output.find(DUPLICATES, "cluster_id", cluster)
        kept = [m["id"] for m in members if m["kept"]]
        others = sorted(m["id"] for m in members if m["id"] != doc_id)
        role = "the kept member" if mine[0]["kept"] else f"removed; kept member {', '.join(kept)}"
        return [f"  duplicates: cluster {cluster} of {len(members)} ({role}); others: "
                f"{', '.join(others[:10])}{' ...' if len(others) > 10 else ''}"]  # fmt: skip

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema]:
        return {DUPLICATES: DECISION_SCHEMA.empty_table().select(PUBLISHED_COLUMNS).schema}

    @staticmethod
    def idle_report(cfg: JobConfig) -> dict[str, Any]:
        # On but nothing staged (every file quarantined): nothing removed.
        return summary({}, [], {}) if cfg.dedup.enabled else {"enabled": False}

    def run(self, view: StagedView) -> StepOutcome:
        cfg = view.cfg
        params = params_for(cfg.dedup)
        keep, skipped = keep_rule(cfg, set(view.columns))
        outcome = run_dedup(view, params.bands, params.rows, keep)
        written = outcome.decisions
        paths = list(written)
        report = {
            **outcome.stats,
            "num_perm": params.num_perm,
            "keep_effective": [("-" if o == "descending" else "") + n for n, o in keep],
            "keep_skipped_missing_columns": skipped,
            "s_curve": {
                f"{s:.2f}": round(candidate_probability(s, params.bands, params.rows), 4)
                for s in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
            },
        }
        return StepOutcome(
            report,
            Decision(
                functools.partial(_apply_file, remove=cfg.dedup.remove, checks=view.cluster_checks),
                files=decision_files(paths, view, sizes={p: n for p, (_, n) in written.items()}),
            ),
            finish=summary,
            output=StepOutput(DUPLICATES, paths, PUBLISHED_COLUMNS, counts=written),
        )


def keep_rule(cfg: JobConfig, columns: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """dedup.keep as (column, order) sort keys over the staged columns, ids
    last to break ties; and the entries skipped for want of a column."""
    keep, skipped = [], []
    for entry in cfg.dedup.keep:
        name = entry.lstrip("-")
        # "id" (or the configured id column) means the document id.
        is_id = name in ("id", cfg.input.id_column)
        column = "id" if is_id else name
        if is_id or name in columns:
            keep.append((column, "descending" if entry.startswith("-") else "ascending"))
        else:
            skipped.append(entry)
    if not any(name == "id" for name, _ in keep):
        keep.append(("id", "ascending"))  # ids break every remaining tie
    return keep, skipped


def summary(report: dict[str, Any], rows: list[dict], rules: dict[str, int]) -> dict[str, Any]:
    """The manifest's dedup section: removals per rule and cluster counts first."""
    stats = dict(report)
    return {
        "enabled": True,
        "exact_duplicates_removed": rules.get("exact_duplicate", 0),
        "near_duplicates_removed": rules.get("near_duplicate", 0),
        "clusters": stats.pop("components", 0),
        "documents_in_clusters": stats.pop("documents_in_components", 0),
        **stats,
    }


def _apply_file(
    index: int, table: pa.Table, decided: pa.Table, remove: bool = True,
    checks: tuple[type[ClusterCheck], ...] = (),
) -> pa.Table:  # fmt: skip
    return apply_decisions(table, decided, remove, checks)
