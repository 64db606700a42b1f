"""`output.splits`: held-out splits (train / validation / test, ...) by a
hash of each kept row's duplicate cluster, so that near-twins never straddle
two splits: a held-out example must not have its twin in train. Rows outside
any cluster hash their own id. Disjoint by construction and stable across
re-runs and cluster sizes (the hash of a key and `output.seed`). Every row of
data/ gets a `split` column; splits/<name>/ holds each split's rows."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import ReportBars, ReportSection
from dedupe_at_scale.steps.base import Decision, GlobalStep, StagedView, StepOutcome
from dedupe_at_scale.steps.mixture import ORDER, copies_of, draws, output_unit, units, with_order

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import FinishedRows

SPLIT = "split"
SALT = 0x3C6EF372
DIRECTORY = "splits"


def cluster_keys(table: pa.Table, id_column: str) -> pa.Array:
    """The key a row's split is drawn from: its duplicate cluster (the kept
    member's id, set by dedup) or, outside any cluster, its own id."""
    ids = pc.cast(table.column(id_column), pa.string())
    if col.CLUSTER in table.column_names:
        return pc.coalesce(table.column(col.CLUSTER), ids)
    return ids


def split_index(table: pa.Table, cfg: JobConfig) -> np.ndarray:
    """Position in output.splits of each row's split."""
    u = draws(cluster_keys(table, cfg.input.id_column), cfg.output.seed + SALT)
    edges = np.cumsum(list(cfg.output.splits.values()))
    edges[-1] = 1.0  # the last split takes what rounding leaves
    return np.minimum(np.searchsorted(edges, u, side="right"), len(edges) - 1)


def assign(index: int, table: pa.Table, cfg: JobConfig) -> pa.Table:
    names = np.array(list(cfg.output.splits), dtype=object)
    split = pa.array(names[split_index(table, cfg)].tolist(), pa.string())
    return with_order(table.append_column(SPLIT, split), cfg, cfg.output.seed)


def in_split(table: pa.Table, name: str) -> pa.Table:
    """The rows of data/ in split `name`."""
    return table.filter(pc.equal(table.column(SPLIT), name))


def split_rows(table: pa.Table, cfg: JobConfig) -> list[dict[str, Any]]:
    """Documents, rows written and units per split in one staged block."""
    kept = col.kept_rows(table)
    rows = copies_of(kept)
    size = units(kept, cfg, output_unit(cfg)) * rows
    names = kept.column(SPLIT).to_numpy(zero_copy_only=False)
    return [
        {
            "split": name,
            "documents": int((names == name).sum()),
            "rows": int(rows[names == name].sum()),
            "units": float(size[names == name].sum()),
        }
        for name in cfg.output.splits
    ]


def summary(cfg: JobConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {name: {"documents": 0, "rows": 0, "units": 0.0} for name in cfg.output.splits}
    for row in rows:
        for key in ("documents", "rows", "units"):
            totals[row["split"]][key] += row[key]
    all_units = sum(t["units"] for t in totals.values()) or 1.0
    return {
        "enabled": True,
        "key": "duplicate cluster" if cfg.dedup.enabled else "id",
        "unit": output_unit(cfg),
        "seed": cfg.output.seed,
        "splits": {
            name: {
                "target_share": share,
                "achieved_share": round(totals[name]["units"] / all_units, 6),
                "documents": totals[name]["documents"],
                "rows_written": totals[name]["rows"],
                "units": round(totals[name]["units"], 3),
            }
            for name, share in cfg.output.splits.items()
        },
    }


class Splits(GlobalStep):
    name = "splits"
    publishes = (DIRECTORY,)
    stage = None  # assigns, never rejects

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        parts = ", ".join(
            f"{name} {v['documents']} ({100 * v['achieved_share']:.1f}%)"
            for name, v in section["splits"].items()
        )
        return [f"Splits by {section['key']}: {parts} (see splits/)."]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        names = list(section["splits"])
        bars = ReportBars(
            "plot-splits", f"Splits by {section['key']} ({section['unit']})",
            [("target", names, [section["splits"][s]["target_share"] for s in names], "muted"),
             ("achieved", names, [section["splits"][s]["achieved_share"] for s in names], "kept")],
            "split", "share (log)", log_y=True, y_format=".1%",
        )  # fmt: skip
        return [ReportSection("splits", "Splits", plots=(bars,))]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return bool(cfg.output.splits)

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(SPLIT, pa.string())]

    @staticmethod
    def trace_lines(output: FinishedRows, doc_id: str, rows: list[dict[str, Any]]) -> list[str]:
        return [f"  split: {rows[0][SPLIT]}"] if rows and rows[0].get(SPLIT) is not None else []

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema | None]:
        return {f"{DIRECTORY}/{name}": None for name in cfg.output.splits}

    @staticmethod
    def check_outputs(
        cfg: JobConfig, data_rows: int, shards: dict[str, list[dict[str, Any]]]
    ) -> str | None:
        """The splits hold data/'s rows exactly."""
        in_splits = sum(s["rows"] for listed in shards.values() for s in listed)
        return (
            None
            if in_splits == data_rows
            else f"{DIRECTORY}/ hold {in_splits} rows, data/ {data_rows}"
        )

    def run(self, view: StagedView) -> StepOutcome:
        cfg = view.cfg
        return StepOutcome(
            {},
            Decision(functools.partial(assign, cfg=cfg), columns=(cfg.input.id_column,)),
            block_summary=functools.partial(split_rows, cfg=cfg),
            block_summary_keys=("split",),
            finish=lambda report, rows, rules: summary(cfg, rows),
            order_by=[ORDER, cfg.input.id_column],
            selections={
                f"{DIRECTORY}/{name}": functools.partial(in_split, name=name)
                for name in cfg.output.splits
            },
        )
