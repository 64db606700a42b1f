"""Per-domain caps of the mixture (`mixture.max_per_domain`): no domain
contributes more than the cap to the output, copies included.

Within a domain, documents are taken in the order of the mixture's own
draws (a hash of id and seed) for as long as the next one still fits; the
rest are left out (rule mixture_domain_cap). The cut is found without the
documents meeting on the driver: each staged file's (domain, draw, amount)
rows go to hash partitions of the domain (one object per file and
partition, as dedup's hops), each partition finds the cut of its domains
over the cap, and the driver gets only those: at most total / cap of them.
`cut_points` is also the single-process reference the tests hold it to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale.stages.minhash import string_hashes
from dedupe_at_scale.steps.tasks import TASK_RETRIES, by_partition, hash_exchange

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import StagedFile, StagedView

RULE = "mixture_domain_cap"
SHOWN = 20  # capped domains listed in the manifest, largest first


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


def domain_cuts(view: StagedView, amounts: Any, cfg: JobConfig) -> dict[str, tuple[float, float]]:
    """cut_points over every staged file, in partitions. `amounts(table)`
    gives a kept block's (domains, draws, amounts written)."""
    parts, cap = view.partitions, float(cfg.mixture.max_per_domain)
    found = ray.get(hash_exchange(view.files, parts, _partitioned, _cuts,
                                  (cfg, amounts, parts), (cap,)))  # fmt: skip
    return {domain: cut for part in found for domain, cut in part.items()}


@ray.remote(max_retries=TASK_RETRIES)
def _partitioned(staged: StagedFile, cfg: JobConfig, amounts: Any, parts: int) -> Any:
    m = cfg.mixture
    kept = staged.read_kept(amounts.columns)
    domains, u, amount = amounts(kept)
    known = pc.is_valid(domains).to_numpy(zero_copy_only=False) & (amount > 0)
    domains = domains.filter(pa.array(known))
    table = pa.table({m.domain_column: domains, "u": u[known], "amount": amount[known]})
    return by_partition(table, string_hashes(domains), parts)


@ray.remote(max_retries=TASK_RETRIES)
def _cuts(cap: float, *tables: pa.Table) -> dict[str, tuple[float, float]]:
    table = pa.concat_tables(tables)
    domains = table.column(0).to_numpy(zero_copy_only=False)
    return cut_points(domains, table["u"].to_numpy(), table["amount"].to_numpy(), cap)


def capped_rows(
    domains: pa.Array, u: np.ndarray, cuts: dict[str, tuple[float, float]]
) -> np.ndarray:
    """Which rows the caps leave out."""
    if not cuts:
        return np.zeros(len(u), dtype=bool)
    names = pa.array(sorted(cuts), pa.string())
    limits = np.array([cuts[n][0] for n in names.to_pylist()])
    at = pc.fill_null(pc.index_in(pc.cast(domains, pa.string()), value_set=names), -1).to_numpy()
    return (at >= 0) & (u >= limits[np.maximum(at, 0)])


def caps_report(cfg: JobConfig, cuts: dict[str, tuple[float, float]]) -> dict[str, Any]:
    m = cfg.mixture
    largest = sorted(cuts.items(), key=lambda kv: (-kv[1][1], kv[0]))[:SHOWN]
    return {
        "column": m.domain_column, "unit": m.per_domain_unit, "max_per_domain": m.max_per_domain,
        "capped_domains": len(cuts),
        "largest": {d: {"available": round(total, 3)} for d, (_, total) in largest},
    }  # fmt: skip
