"""Dedup's first sub-step, scan: per group of staged files, the exact keys
and the LSH band keys of its kept documents, hash-partitioned (sent into
two hops that buckets reads), and each file's uid range."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages.minhash import EMPTY, band_keys
from dedupe_at_scale.steps.dedup.edges import file_indexes, uid_range
from dedupe_at_scale.steps.tasks import TASK_RETRIES, Returns, split, submit

if TYPE_CHECKING:
    from dedupe_at_scale.steps.base import StagedGroup
    from dedupe_at_scale.steps.dedup.tasks import DedupRun
    from dedupe_at_scale.steps.exchange import Outbox


def scan(run: DedupRun) -> None:
    """Per file group: exact keys and LSH band keys, hash-partitioned."""
    exact_hop, band_hop = run.ex.hop(run.partitions), run.ex.hop(run.partitions)
    returns = _scan_returns(exact_hop.returns, band_hop.returns)
    scans = [
        submit(_scan, returns, g, run.cfg, run.bands, run.rows, run.partitions,
               exact_hop.outbox(i), band_hop.outbox(i))
        for i, g in enumerate(run.groups)
    ]  # fmt: skip
    run.indexes = file_indexes([s["uid_ranges"] for s in scans])
    run.exact_in = exact_hop.inboxes([s["exact"] for s in scans])
    run.band_in = band_hop.inboxes([s["bands"] for s in scans])
    run.open_hops = [exact_hop, band_hop]


def _scan_returns(exact: int, bands: int) -> Returns:
    return Returns((("uid_ranges", None), ("exact", exact), ("bands", bands)))


def signature_matrix(table: pa.Table) -> np.ndarray:
    """The MINHASH column as a (rows, permutations) array."""
    sig = table.column(col.MINHASH).combine_chunks()
    width = sig.type.list_size
    return sig.values.to_numpy().reshape(-1, width) if len(sig) else np.zeros((0, width), np.uint32)


@ray.remote(max_retries=TASK_RETRIES)
def _scan(group: StagedGroup, cfg, bands, rows, partitions, exact_out: Outbox, band_out: Outbox):
    tables = group.read_each([col.EXACT_HI, col.EXACT_LO, col.MINHASH])
    # The ranges cover rejected rows too: they map every uid of each file.
    uid_ranges = [uid_range(t) for t in tables]
    table = col.kept_rows(pa.concat_tables(tables))
    uid = table.column(col.UID).to_numpy()
    hi = table.column(col.EXACT_HI).to_numpy()
    lo = table.column(col.EXACT_LO).to_numpy()
    exact = pa.table({"hi": hi, "lo": lo, "uid": uid}).slice(0, len(uid) if cfg.exact else 0)
    exact_parts = split(
        exact, (hi[: exact.num_rows] % np.uint64(partitions)).astype(np.int64), partitions
    )
    if cfg.near:
        sigs = signature_matrix(table)
        has_tokens = ~(sigs == EMPTY).all(axis=1)
        keys = band_keys(sigs[has_tokens], bands, rows)
        # Buckets fold identical texts onto one copy, for the exact edges link
        # them; without exact edges nothing may fold (a uid is no one else's).
        fold = hi if cfg.exact else uid.astype(np.uint64)
        band = pa.table(
            {
                "key": keys.reshape(-1),
                "uid": np.repeat(uid[has_tokens], bands),
                "exact": np.repeat(fold[has_tokens], bands),
            }
        )
        dest = (keys.reshape(-1) % np.uint64(partitions)).astype(np.int64)
    else:
        band = pa.table({"key": pa.array([], pa.uint64()), "uid": pa.array([], pa.int64()),
                         "exact": pa.array([], pa.uint64())})  # fmt: skip
        dest = np.zeros(0, np.int64)
    exact_sent, band_sent = (
        exact_out.send(exact_parts),
        band_out.send(split(band, dest, partitions)),
    )
    return _scan_returns(len(exact_sent), len(band_sent)).pack(
        uid_ranges=uid_ranges, exact=exact_sent, bands=band_sent
    )
