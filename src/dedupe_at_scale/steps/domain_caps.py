"""Per-domain caps of the mixture (`mixture.max_per_domain`): no domain
contributes more than the cap to the output, copies included.

Within a domain, documents are taken in the order of the mixture's own
draws (a hash of id and seed) for as long as the next one still fits; the
rest are left out (rule mixture_domain_cap). The cut is found without the
documents meeting on the driver: each staged file's (domain, draw, amount)
rows go to hash partitions of the domain (steps/partition_rows.py), each
partition finds the cut of its domains over the cap, and a task joins them
into one table in the object store, which the write pass's tasks read. The
driver gets only their number and the largest (for the manifest), not one
entry per capped domain. `cut_points` is also the single-process reference
the tests hold it to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.steps.partition_rows import reduce_by_partition
from dedupe_at_scale.steps.tasks import TASK_RETRIES

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import StagedFile, StagedView

RULE = "mixture_domain_cap"
SHOWN = 20  # capped domains listed in the manifest, largest first
CUTS = pa.schema([("domain", pa.string()), ("limit", pa.float64()), ("total", pa.float64())])


@dataclass(frozen=True)
class DomainCuts:
    """The capped domains' cuts as the driver holds them: `table` is the
    ref of one CUTS table (every capped domain), `count` and `largest`
    (domain, total; at most SHOWN, largest first) what the manifest shows."""

    table: ray.ObjectRef
    count: int
    largest: tuple[tuple[str, float], ...]

    def __bool__(self) -> bool:
        return self.count > 0


def cut_points(
    domains: np.ndarray, u: np.ndarray, amount: np.ndarray, cap: float
) -> dict[str, tuple[float, float]]:
    """Per domain over `cap`: the draw from which its documents are left
    out (the first that no longer fits, in draw order), and its total."""
    if len(domains) == 0:
        return {}
    names, codes = np.unique(domains.astype(str), return_inverse=True)
    order = np.lexsort((u, codes))
    codes, u, amount = codes[order], u[order], amount[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    cuts = {}
    for start, end in zip(starts.tolist(), ends.tolist()):
        running = np.cumsum(amount[start:end])
        if running[-1] <= cap:
            continue
        first_out = int(np.argmax(running > cap))
        cuts[str(names[codes[start]])] = (float(u[start + first_out]), float(running[-1]))
    return cuts


def domain_cuts(view: StagedView, amounts: Any, cfg: JobConfig) -> DomainCuts:
    """cut_points over every staged file, in partitions. `amounts(table)`
    gives a kept block's (domains, draws, amounts written)."""
    cap = float(cfg.mixture.max_per_domain)
    parts = reduce_by_partition(view, "mixture", _domain_rows, (cfg, amounts), _cuts, (cap,))
    table, shown = _joined.options(num_returns=2).remote(*parts)
    count, largest = ray.get(shown)
    return DomainCuts(table, count, largest)


def _domain_rows(staged: StagedFile, cfg: JobConfig, amounts: Any) -> tuple[pa.Table, np.ndarray]:
    m = cfg.mixture
    kept = staged.read_kept(amounts.columns)
    domains, u, amount = amounts(kept)
    known = pc.is_valid(domains).to_numpy(zero_copy_only=False) & (amount > 0)
    domains = domains.filter(pa.array(known))
    table = pa.table({m.domain_column: domains, "u": u[known], "amount": amount[known]})
    return table, string_hashes(domains)


def _cuts(table: pa.Table, cap: float) -> pa.Table:
    domains = table.column(0).to_numpy(zero_copy_only=False)
    return cut_table(cut_points(domains, table["u"].to_numpy(), table["amount"].to_numpy(), cap))


def cut_table(cuts: dict[str, tuple[float, float]]) -> pa.Table:
    """cut_points' answer as a CUTS table, by domain."""
    names = sorted(cuts)
    return pa.table({
        "domain": names, "limit": [cuts[n][0] for n in names], "total": [cuts[n][1] for n in names],
    }, schema=CUTS)  # fmt: skip


@ray.remote(max_retries=TASK_RETRIES)
def _joined(*parts: pa.Table) -> tuple[pa.Table, tuple[int, tuple[tuple[str, float], ...]]]:
    """The partitions' cuts as one table, and (count, largest) for the driver."""
    table = pa.concat_tables([CUTS.empty_table(), *parts]).combine_chunks()
    totals = table["total"].to_numpy()
    names = table["domain"].to_pylist()
    largest = sorted(zip(names, totals.tolist()), key=lambda kv: (-kv[1], kv[0]))[:SHOWN]
    return table, (table.num_rows, tuple(largest))


def capped_rows(domains: pa.Array, u: np.ndarray, cuts: pa.Table) -> np.ndarray:
    """Which rows the caps (a CUTS table) leave out."""
    if cuts.num_rows == 0:
        return np.zeros(len(u), dtype=bool)
    names = cuts["domain"].combine_chunks()
    at = pc.fill_null(pc.index_in(pc.cast(domains, pa.string()), value_set=names), -1).to_numpy()
    limits = cuts["limit"].to_numpy()
    return (at >= 0) & (u >= limits[np.maximum(at, 0)])


def caps_report(cfg: JobConfig, cuts: DomainCuts) -> dict[str, Any]:
    m = cfg.mixture
    return {
        "column": m.domain_column, "unit": m.per_domain_unit, "max_per_domain": m.max_per_domain,
        "capped_domains": cuts.count,
        "largest": {d: {"available": round(total, 3)} for d, total in cuts.largest},
    }  # fmt: skip
