"""Mixture weighting: up- and down-sample groups to target proportions.

Every document gets a draw u in [0, 1) from a hash of its id and the seed, so
re-runs pick the same documents whatever the cluster. A group's plan is
(base, threshold): each document appears base times, plus once more if
u < threshold. Thresholds come from a histogram of units over u per group
(4096 bins, summed over blocks), so a group's selected units hit its target to
within one bin's worth, not to within sampling noise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import Field

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import fold_refs
from dedupe_at_scale.sections import ConfigError, Require, Section
from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.stages.tokens import N_TOKENS
from dedupe_at_scale.steps.base import Decision, GlobalStep, StagedFile, StagedView, StepOutcome
from dedupe_at_scale.steps.domain_caps import RULE as CAP_RULE
from dedupe_at_scale.steps.domain_caps import DomainCuts, capped_rows, caps_report, domain_cuts
from dedupe_at_scale.steps.mixture_summary import mixture_section, mixture_summary, summary_lines
from dedupe_at_scale.steps.tasks import TASK_RETRIES, sum_by_key

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.report_parts import ReportSection

BINS = 4096
OTHER = "__other__"  # rows whose group has no weight


class MixtureConfig(Section):
    enabled: bool = False
    # Column whose values are the groups (source, language, domain, ...).
    group_column: str = "source"
    # Target share per group (normalized to sum 1); groups not listed are dropped.
    weights: dict[str, float] = Field(default_factory=dict)
    # tokens: the n_tokens of the tokens section (which must be on).
    unit: Literal["documents", "bytes", "words", "tokens"] = "documents"
    # Output size in units; null: the largest mix possible without upsampling.
    total: float | None = None
    # How many times a document may appear when a group is upsampled (1: never).
    max_repeats: int = 1
    seed: int = 0
    # No domain contributes more than this to the output, copies included
    # (steps/domain_caps.py; in per_domain_unit; null: no cap). Without
    # weights, the mixture only caps domains.
    max_per_domain: float | None = None
    domain_column: str = "domain"  # the url_filter stage writes it
    per_domain_unit: Literal["documents", "bytes", "words", "tokens"] = "documents"

    def check(self, job: JobConfig, require: Require) -> None:
        if self.enabled and (self.weights or self.max_per_domain is None):
            weights = self.weights.values()
            require(bool(self.weights), "mixture.weights",
                    "must name at least one group (or set max_per_domain)")  # fmt: skip
            require(all(w >= 0 for w in weights), "mixture.weights", "must be >= 0")
            require(sum(weights) > 0, "mixture.weights", "must not all be 0")
        if self.max_per_domain is not None:
            require(self.max_per_domain > 0, "mixture.max_per_domain", "must be positive")
        require(self.max_repeats >= 1, "mixture.max_repeats", "must be >= 1")
        if self.total is not None:
            require(self.total > 0, "mixture.total", "must be positive")
        for key, unit in (("unit", self.unit), ("per_domain_unit", self.per_domain_unit)):
            require(
                unit != "tokens" or job.tokens.enabled, f"mixture.{key}",
                "is tokens, which needs the tokens section on (tokens.enabled: true)",
            )  # fmt: skip


@dataclass(frozen=True)
class GroupPlan:
    base: int  # copies every document gets
    threshold: float  # one more copy when u < threshold
    target: float  # units wanted
    available: float  # units in the data
    expected: float  # units the plan selects (histogram estimate)

    def copies(self, u: np.ndarray) -> np.ndarray:
        return self.base + (u < self.threshold).astype(np.int64)


def draws(ids: pa.Array, seed: int) -> np.ndarray:
    """Uniform [0, 1) per id, stable across runs, workers and id types."""
    keyed = pc.binary_join_element_wise(pc.cast(ids, pa.string()), pa.scalar(str(seed)), "\x1f")
    return (string_hashes(keyed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def units(table: pa.Table, cfg: JobConfig, unit: str | None = None) -> np.ndarray:
    """Size of each row in `unit` (the mixture's by default)."""
    unit = unit or cfg.mixture.unit
    if unit == "documents":
        return np.ones(table.num_rows, dtype=np.float64)
    if unit == "tokens":
        return pc.fill_null(table.column(N_TOKENS), 0).to_numpy().astype(np.float64)
    texts = table.column(cfg.input.document_column)
    if unit == "bytes":
        return pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.float64)
    words = pc.list_value_length(pc.utf8_split_whitespace(texts))
    return words.to_numpy(zero_copy_only=False).astype(np.float64)


def unit_columns(cfg: JobConfig, unit: str | None = None) -> list[str]:
    """The columns `units` reads."""
    unit = unit or cfg.mixture.unit
    return {"documents": [], "tokens": [N_TOKENS]}.get(unit, [cfg.input.document_column])


def group_keys(table: pa.Table, cfg: MixtureConfig) -> np.ndarray:
    """The group of each row as a string; OTHER for groups without weight."""
    values = pc.cast(table.column(cfg.group_column), pa.string()).to_pylist()
    weighted = {g for g, w in cfg.weights.items() if w > 0}
    return np.array([v if v in weighted else OTHER for v in values], dtype=object)


def histogram(groups: np.ndarray, u: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Units per u-bin for each group of one block."""
    bins = np.minimum((u * BINS).astype(np.int64), BINS - 1)
    out = {}
    for group in np.unique(groups):
        mask = groups == group
        out[str(group)] = np.bincount(bins[mask], weights=weight[mask], minlength=BINS)
    return out


def plan(cfg: MixtureConfig, hist: dict[str, np.ndarray]) -> dict[str, GroupPlan]:
    """Per group, how many copies of which documents reach the target."""
    weights = {g: w / sum(cfg.weights.values()) for g, w in cfg.weights.items() if w > 0}
    available = {g: float(hist[g].sum()) if g in hist else 0.0 for g in weights}
    if cfg.total is None:
        # Largest mix without upsampling: the scarcest group (relative to its weight) decides.
        total = min((available[g] / w for g, w in weights.items()), default=0.0)
    else:
        total = float(cfg.total)
    plans = {}
    for group, w in weights.items():
        target = w * total
        plans[group] = _group_plan(target, available[group], hist.get(group), cfg.max_repeats)
    return plans


def _group_plan(
    target: float, available: float, hist: np.ndarray | None, max_repeats: int
) -> GroupPlan:
    if available <= 0 or hist is None:
        return GroupPlan(0, 0.0, target, 0.0, 0.0)
    base = min(int(math.floor(target / available)), max_repeats)
    if base >= max_repeats:
        return GroupPlan(max_repeats, 0.0, target, available, max_repeats * available)
    remainder = target - base * available
    threshold = cut_point(hist, remainder)
    if threshold is None:
        return GroupPlan(base + 1, 0.0, target, available, (base + 1) * available)
    return GroupPlan(base, threshold, target, available, base * available + remainder)


def cut_point(hist: np.ndarray, amount: float) -> float | None:
    """The draw below which `amount` units of a histogram over draws lie
    (interpolated within the bin that reaches it); None when the histogram
    holds less."""
    cumulative = np.cumsum(hist)
    k = int(np.searchsorted(cumulative, amount))  # first bin reaching the amount
    if k >= BINS:
        return None
    before = cumulative[k - 1] if k > 0 else 0.0
    inside = (amount - before) / hist[k] if hist[k] > 0 else 0.0
    return (k + min(max(inside, 0.0), 1.0)) / BINS


def output_unit(cfg: JobConfig) -> str:
    """What the output is measured in: the mixture's unit, else documents."""
    return cfg.mixture.unit if cfg.mixture.enabled else "documents"


COPIES = "__dds_copies"  # how many times a kept document is written
ORDER = "__dds_order"  # output position key: spreads groups over shards
ORDER_SALT = 0x5BD1E995
REPEAT = "mixture_repeat"  # in data/: 0 for a document's first copy, 1 for its second, ...


def copies_of(table: pa.Table) -> np.ndarray:
    """How many times each row is written (1 without a mixture)."""
    if COPIES in table.column_names:
        return table.column(COPIES).to_numpy()
    return np.ones(table.num_rows, np.int64)


def plan_copies(
    table: pa.Table, cfg: MixtureConfig, plans: dict[str, GroupPlan], id_column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's copies under the group plans (1 each without weights), its
    draw and its group."""
    groups = group_keys(table, cfg)
    u = draws(table.column(id_column), cfg.seed)
    if not cfg.weights:  # domain caps only
        return np.ones(table.num_rows, dtype=np.int64), u, groups
    copies = np.zeros(table.num_rows, dtype=np.int64)
    for group, group_plan in plans.items():
        mask = groups == group
        copies[mask] = group_plan.copies(u[mask])
    return copies, u, groups


class CapAmounts:
    """What a kept block contributes per domain (caps' unit x copies), for
    steps/domain_caps; picklable, for its tasks."""

    def __init__(self, cfg: JobConfig, plans: dict[str, GroupPlan]):
        self.cfg, self.plans = cfg, plans
        m = cfg.mixture
        unit_cols = unit_columns(cfg, m.per_domain_unit)
        self.columns = list(dict.fromkeys([cfg.input.id_column, m.group_column, m.domain_column,
                                           *unit_cols]))  # fmt: skip

    def __call__(self, kept: pa.Table) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        m = self.cfg.mixture
        copies, u, _ = plan_copies(kept, m, self.plans, self.cfg.input.id_column)
        amount = units(kept, self.cfg, m.per_domain_unit) * copies
        return kept.column(m.domain_column).combine_chunks(), u, amount


def apply_plan(
    table: pa.Table, cfg: MixtureConfig, plans: dict[str, GroupPlan], id_column: str,
    cuts: pa.Table | None = None,
) -> pa.Table:  # fmt: skip
    """Mark documents left out of the mixture and add the copy count and order
    key of the ones it keeps; `cuts`: the domain caps' (domain_caps.CUTS)."""
    kept = pc.is_null(table.column(col.STAGE)).to_numpy(zero_copy_only=False)
    copies, u, groups = plan_copies(table, cfg, plans, id_column)
    capped = np.zeros(table.num_rows, dtype=bool)
    if cuts:
        capped = kept & (copies > 0) & capped_rows(table.column(cfg.domain_column), u, cuts)
        copies[capped] = 0
    dropped = kept & (copies == 0)
    copies[~kept] = 0
    if dropped.any():
        rule = np.where(groups == OTHER, "mixture_group_not_weighted", "mixture_downsample")
        rule = pa.array(np.where(capped, CAP_RULE, rule).tolist())
        value, sep = _as_text(table, cfg.group_column), f": {cfg.group_column}="
        if cuts:  # the capped name their domain
            value = pc.if_else(pa.array(capped), _as_text(table, cfg.domain_column), value)
            sep = pc.if_else(pa.array(capped), f": {cfg.domain_column}=", sep)
        reason = pc.binary_join_element_wise(rule, sep, value, "")
        table = col.mark_rejected(table, dropped, "mixture", rule, reason)
    table = table.append_column(COPIES, pa.array(copies))
    # A second, independent draw orders the output: the selection draw would put
    # every downsampled group's documents first.
    return table.append_column(
        ORDER, pa.array(draws(table.column(id_column), cfg.seed + ORDER_SALT))
    )


def with_order(table: pa.Table, cfg: JobConfig, seed: int) -> pa.Table:
    """The output order key where the mixture has not set one (subsets and
    splits want mixed shards too)."""
    if ORDER in table.column_names:
        return table
    return table.append_column(
        ORDER, pa.array(draws(table.column(cfg.input.id_column), seed + ORDER_SALT))
    )


def expand_copies(table: pa.Table) -> pa.Table:
    """Each kept row repeated as often as the plan says, with `mixture_repeat`
    (0 for the first copy) and an order key that spreads copies apart."""
    copies = table.column(COPIES).to_numpy()
    rows = np.repeat(np.arange(table.num_rows), copies)
    starts = np.repeat(np.cumsum(copies) - copies, copies)
    repeat = np.arange(len(rows)) - starts
    out = table.take(pa.array(rows))
    order = (out.column(ORDER).to_numpy() + 0.6180339887498949 * repeat) % 1.0
    out = out.set_column(out.schema.get_field_index(ORDER), ORDER, pa.array(order))
    return out.append_column(REPEAT, pa.array(repeat.astype(np.int32)))


class Mixture(GlobalStep):
    """`mixture` section: a plan from the histogram of units per group over
    all kept documents; the decision marks what it leaves out and the copies
    of what it keeps; output is ordered by a second draw so every shard
    carries the mix."""

    name = stage = "mixture"

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        return summary_lines(section)

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        return [mixture_section(section)]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.mixture.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(REPEAT, pa.int32())]

    @staticmethod
    def trace_note(rows: list[dict[str, Any]]) -> str:
        repeats = sorted(r[REPEAT] for r in rows if r.get(REPEAT) is not None)
        return f" (mixture copies {', '.join(map(str, repeats))})" if repeats else ""

    def run(self, view: StagedView) -> StepOutcome:
        cfg = view.cfg
        _require_column(view, cfg.mixture.group_column, "mixture.group_column")
        # Folded in tasks: the driver holds a few histograms, not one a file.
        parts = [_histogram.remote(f, cfg) for f in view.files] if cfg.mixture.weights else []
        merged = fold_refs(parts, sum_by_key)
        plans = plan(cfg.mixture, merged)
        id_column = cfg.input.id_column
        cuts, columns = None, (id_column, cfg.mixture.group_column)
        if cfg.mixture.max_per_domain is not None:
            _require_column(view, cfg.mixture.domain_column, "mixture.domain_column")
            cuts = domain_cuts(view, CapAmounts(cfg, plans), cfg)
            columns += (cfg.mixture.domain_column,)

        def finish(report: dict, rows: list[dict], rules: dict) -> dict:
            section = mixture_summary(cfg.mixture, plans, rows)
            if cuts is not None:
                section["domain_caps"] = caps_report(cfg, cuts)
            return section

        return StepOutcome(
            {},
            plan_decision(cfg.mixture, plans, id_column, cuts, columns),
            block_summary=functools.partial(achieved_rows, cfg=cfg),
            block_summary_keys=("group",),
            finish=finish,
            arrange_kept=expand_copies,
            order_by=[ORDER, id_column],
        )


def _as_text(table: pa.Table, name: str) -> pa.Array:
    return pc.fill_null(pc.cast(table.column(name), pa.string()), "None")


def _require_column(view: StagedView, name: str, key: str) -> None:
    if name not in view.columns:
        shown = ", ".join(n for n in view.columns if not n.startswith(col.INTERNAL_PREFIX))
        raise ConfigError(f"{key} '{name}' is not a column of the data (columns: {shown})")


def plan_decision(cfg: MixtureConfig, plans: dict[str, GroupPlan], id_column: str,
                  cuts: DomainCuts | None, columns: tuple[str, ...]) -> Decision:  # fmt: skip
    """The mixture's decision; the capped domains' cuts (domain_caps.DomainCuts)
    go by reference, not copied into each read task that carries it."""
    shared = cuts.table if cuts else None
    apply = functools.partial(_apply_file, cfg=cfg, plans=plans, id_column=id_column, cuts=shared)
    return Decision(apply, columns=columns)


def _apply_file(index: int, table: pa.Table, cuts: Any = None, **plan_args: Any) -> pa.Table:
    return apply_plan(table, cuts=ray.get(cuts) if cuts is not None else None, **plan_args)


@ray.remote(max_retries=TASK_RETRIES)
def _histogram(staged: StagedFile, cfg: JobConfig) -> dict[str, np.ndarray]:
    m = cfg.mixture
    columns = list(dict.fromkeys([cfg.input.id_column, m.group_column, *unit_columns(cfg)]))
    kept = staged.read_kept(columns)
    return histogram(
        group_keys(kept, m), draws(kept.column(cfg.input.id_column), m.seed), units(kept, cfg)
    )


def achieved_rows(table: pa.Table, cfg: JobConfig) -> list[dict]:
    """Units, documents and copies written per group in one block."""
    kept = col.kept_rows(table)
    copies = copies_of(kept)
    size = units(kept, cfg)
    tokens = units(kept, cfg, "tokens") if N_TOKENS in kept.column_names else None
    groups = group_keys(kept, cfg.mixture)
    rows = []
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        row = {
            "group": g,
            "units": float((size * copies)[mask].sum()),
            "documents": int(mask.sum()),
            "copies": int(copies[mask].sum()),
        }
        if tokens is not None:
            row["tokens"] = int((tokens * copies)[mask].sum())
        rows.append(row)
    return rows
