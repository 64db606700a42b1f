"""`output.subsets`: nested subsets for data-scaling runs, e.g. 25%, 50% and
100% of the output, each keeping the mixture's group proportions.

Every document gets a draw v in [0, 1) from its id and `output.seed`; a
subset of fraction f holds, per group, the documents with v below that
group's threshold t(f), chosen from a histogram of units over v (as the
mixture does) so that the group's units in the subset are f times its units
in the output. t grows with f, so every smaller subset is inside every larger
one; a document upsampled by the mixture keeps all its copies (the draw is
per id). With output.splits, subsets are drawn from the train split (else the
largest), so every run of a scaling experiment is held out against the same
validation and test rows. Each subset is written to subsets/<percent>/ in
data/'s order (mixed shards): a training loader points at a directory.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import fold_refs
from dedupe_at_scale.io.output import subset_name
from dedupe_at_scale.report_parts import ReportBars, ReportSection
from dedupe_at_scale.steps.base import Decision, GlobalStep, StagedFile, StagedView, StepOutcome
from dedupe_at_scale.steps.mixture import (
    COPIES,
    ORDER,
    copies_of,
    cut_point,
    draws,
    group_keys,
    histogram,
    output_unit,
    unit_columns,
    units,
    with_order,
)
from dedupe_at_scale.steps.splits import SPLIT
from dedupe_at_scale.steps.tasks import TASK_RETRIES, sum_by_key

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import FinishedRows

SALT = 0x7F4A7C15
DIRECTORY = "subsets"
ALL = "all"  # the one group when no mixture is on

Thresholds = dict[str, dict[str, float]]  # subset name -> group -> threshold on v


def groups_of(table: pa.Table, cfg: JobConfig) -> np.ndarray:
    if cfg.mixture.enabled:
        return group_keys(table, cfg.mixture)
    return np.full(table.num_rows, ALL, dtype=object)


def pool_split(cfg: JobConfig) -> str | None:
    """The split subsets draw from: train, else the largest."""
    splits = cfg.output.splits
    if not splits:
        return None
    return "train" if "train" in splits else max(splits, key=lambda n: splits[n])


def in_pool(table: pa.Table, cfg: JobConfig) -> np.ndarray:
    """Rows subsets may draw from: all, or those of pool_split."""
    split = pool_split(cfg)
    if split is None:
        return np.ones(table.num_rows, bool)
    return pc.equal(table.column(SPLIT), split).to_numpy(zero_copy_only=False)


def subset_draws(table: pa.Table, cfg: JobConfig) -> np.ndarray:
    return draws(table.column(cfg.input.id_column), cfg.output.seed + SALT)


def memberships(
    table: pa.Table, cfg: JobConfig, thresholds: Thresholds, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """Whether each row belongs to each subset of `names` (draws and groups
    computed once; thresholds looked up per distinct group)."""
    v = subset_draws(table, cfg)
    distinct, group = np.unique(groups_of(table, cfg).astype(str), return_inverse=True)
    pool = in_pool(table, cfg)
    limits = {n: np.array([thresholds[n].get(g, 0.0) for g in distinct], np.float64) for n in names}
    return {name: pool & (v < limit[group]) for name, limit in limits.items()}


def in_subset(table: pa.Table, cfg: JobConfig, thresholds: Thresholds, name: str) -> pa.Table:
    """The rows of data/ in subset `name`."""
    return table.filter(pa.array(memberships(table, cfg, thresholds, [name])[name]))


def threshold(hist: np.ndarray, target: float) -> float:
    """The v below which `target` units of the histogram lie; infinite when
    the target is everything (summation order must not leave a row out)."""
    if target >= float(np.sum(hist)) * (1 - 1e-12):
        return float("inf")
    cut = cut_point(hist, target)
    return float("inf") if cut is None else cut


def plan(cfg: JobConfig, hist: dict[str, np.ndarray]) -> Thresholds:
    return {
        subset_name(f): {g: threshold(h, f * float(h.sum())) for g, h in hist.items()}
        for f in sorted(cfg.output.subsets)
    }


def _columns(cfg: JobConfig) -> list[str]:
    wanted = [cfg.input.id_column, *unit_columns(cfg, output_unit(cfg))]
    if cfg.mixture.enabled:
        wanted += [cfg.mixture.group_column, COPIES]
    if cfg.output.splits:
        wanted.append(SPLIT)
    return list(dict.fromkeys(wanted))


def _weights(table: pa.Table, cfg: JobConfig) -> np.ndarray:
    """Units each kept row puts into the output (its copies included)."""
    return units(table, cfg, output_unit(cfg)) * copies_of(table)


@ray.remote(max_retries=TASK_RETRIES)
def _histogram(staged: StagedFile, cfg: JobConfig) -> dict[str, np.ndarray]:
    kept = staged.read_kept(_columns(cfg))
    pool = in_pool(kept, cfg)
    return histogram(
        groups_of(kept, cfg)[pool], subset_draws(kept, cfg)[pool], _weights(kept, cfg)[pool]
    )


def subset_rows(table: pa.Table, cfg: JobConfig, thresholds: Thresholds) -> list[dict]:
    """Units, documents and rows per (subset, group) in one staged block; the
    pool's own as subset "pool"."""
    kept = col.kept_rows(table)
    weight = _weights(kept, cfg)
    rows = copies_of(kept)
    groups = groups_of(kept, cfg)
    masks = {"pool": in_pool(kept, cfg), **memberships(kept, cfg, thresholds, thresholds)}
    out = []
    for name, mask in masks.items():
        for g in sorted(set(groups[mask].tolist())):
            m = mask & (groups == g)
            out.append({"subset": name, "group": g, "units": float(weight[m].sum()),
                        "documents": int(m.sum()), "rows": int(rows[m].sum())})  # fmt: skip
    return out


def summary(cfg: JobConfig, thresholds: Thresholds, rows: list[dict]) -> dict[str, Any]:
    """Per subset: its size against the pool's and each group's share against
    the pool's shares (the deviation the 1-point goal is about)."""
    sums: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        group = sums.setdefault(row["subset"], {}).setdefault(
            row["group"], {"units": 0.0, "documents": 0, "rows": 0}
        )
        for key in ("units", "documents", "rows"):
            group[key] += row[key]
    pool = sums.get("pool", {})
    pool_units = sum(g["units"] for g in pool.values()) or 1.0
    pool_share = {g: v["units"] / pool_units for g, v in pool.items()}
    subsets = {}
    for f in sorted(cfg.output.subsets):
        name = subset_name(f)
        groups = sums.get(name, {})
        total = sum(g["units"] for g in groups.values())
        shares = {g: (groups[g]["units"] / total if g in groups and total else 0.0) for g in pool}
        subsets[name] = {
            "fraction": f,
            "achieved_fraction": round(total / pool_units, 6),
            "units": round(total, 3),
            "documents": sum(g["documents"] for g in groups.values()),
            "rows_written": sum(g["rows"] for g in groups.values()),
            "group_shares": {g: round(s, 6) for g, s in shares.items()},
            "max_share_deviation_points": round(
                100 * max((abs(shares[g] - pool_share[g]) for g in pool), default=0.0), 3
            ),
        }
    return {
        "enabled": True,
        "unit": output_unit(cfg),
        "group_column": cfg.mixture.group_column if cfg.mixture.enabled else None,
        "drawn_from": pool_split(cfg) or "all kept documents",
        "seed": cfg.output.seed,
        "pool_units": round(pool_units, 3),
        "pool_group_shares": {g: round(s, 6) for g, s in pool_share.items()},
        "subsets": subsets,
    }


class Subsets(GlobalStep):
    name = "subsets"
    publishes = (DIRECTORY,)
    stage = None  # selects, never rejects

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        parts = ", ".join(
            f"{name}% {v['rows_written']} rows (mix within "
            f"{v['max_share_deviation_points']:.2f} points)"
            for name, v in section["subsets"].items()
        )
        return [
            f"Nested subsets of {section['drawn_from']} in {section['unit']}: {parts} (see subsets/)."
        ]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        names = list(section["subsets"])
        bars = ReportBars(
            "plot-subsets", f"Nested subsets: group shares ({section['unit']})",
            [(g, names, [section["subsets"][s]["group_shares"].get(g, 0.0) for s in names], None)
             for g in section["pool_group_shares"]],
            "subset (% of output)", "group share", barmode="stack", y_format=".0%",
            x_category=True,
        )  # fmt: skip
        return [ReportSection("subsets", "Subsets", plots=(bars,))]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return bool(cfg.output.subsets)

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema | None]:
        return {f"{DIRECTORY}/{subset_name(f)}": None for f in cfg.output.subsets}

    @staticmethod
    def trace_lines(output: FinishedRows, doc_id: str, rows: list[dict[str, Any]]) -> list[str]:
        prefix = f"{DIRECTORY}/"
        names = sorted((n for n in output.names() if n.startswith(prefix)), key=_percent)
        if not rows or not names:
            return []
        held = [
            f"{name.removeprefix(prefix)}% ({len(found)} row(s))"
            for name in names
            if (found := output.find(name, output.id_column, doc_id))
        ]
        return [f"  subsets: {', '.join(held) or 'in none'}"]

    def run(self, view: StagedView) -> StepOutcome:
        cfg = view.cfg
        # Folded in tasks: the driver holds a few histograms, not one a file.
        merged = fold_refs([_histogram.remote(f, cfg) for f in view.files], sum_by_key)
        thresholds = plan(cfg, merged)
        return StepOutcome(
            {},
            Decision(functools.partial(_order, cfg=cfg), columns=(cfg.input.id_column,)),
            block_summary=functools.partial(subset_rows, cfg=cfg, thresholds=thresholds),
            block_summary_keys=("subset", "group"),
            finish=lambda report, rows, rules: summary(cfg, thresholds, rows),
            order_by=[ORDER, cfg.input.id_column],
            selections={
                f"{DIRECTORY}/{name}": functools.partial(
                    in_subset, cfg=cfg, thresholds=thresholds, name=name
                )
                for name in thresholds
            },
        )


def _order(index: int, table: pa.Table, cfg: JobConfig) -> pa.Table:
    return with_order(table, cfg, cfg.output.seed)


def _percent(name: str) -> float:
    try:
        return float(name.removeprefix(f"{DIRECTORY}/"))
    except ValueError:
        return math.inf
