"""Dedup's sub-steps (steps/dedup/tasks.py SUB_STEPS) run alone on staged
files written here, against a straightforward reference: every pair of kept
documents compared, no partitions, no hops.

The corpus is adversarial for the sub-steps' plumbing: near copies of a few
bases at every agreement from 0.5 to 1, exact copies, documents without
tokens (an all-EMPTY signature), rejected rows that copy a kept signature
(they must link nothing), and an empty staged file, spread over files and
groups so that every pair may cross them."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.output import file_counts
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.stages.minhash import EMPTY, band_keys, params_for
from dedupe_at_scale.steps.base import StagedView, group_files
from dedupe_at_scale.steps.dedup import components
from dedupe_at_scale.steps.dedup.components import components_local
from dedupe_at_scale.steps.dedup.edges import file_indexes, file_of, pairs_table
from dedupe_at_scale.steps.dedup.tasks import SUB_STEPS, DedupRun, run_sub_steps, verify
from dedupe_at_scale.steps.exchange import Exchange
from dedupe_at_scale.steps.tasks import Pieces

pytestmark = [pytest.mark.timeout(300)]

WIDTH = 128
FILE_SIZES = [50, 0, 37, 61, 44, 58]  # staged files, one of them empty


def corpus(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sum(FILE_SIZES)
    bases = rng.integers(0, 2**32 - 1, (24, WIDTH), dtype=np.uint32)
    base = rng.integers(0, len(bases), n)
    sigs = bases[base].copy()
    for row in range(n):  # 0 to 64 of 128 slots changed: agreement 1 to 0.5
        slots = rng.choice(WIDTH, rng.integers(0, 65), replace=False)
        sigs[row, slots] = rng.integers(0, 2**32 - 1, len(slots), dtype=np.uint32)
    exact = rng.integers(0, 2**63, (n, 2), dtype=np.uint64)
    for row in rng.choice(n, 30, replace=False):  # exact copies of an earlier row
        source = rng.integers(0, row) if row else 0
        sigs[row], exact[row] = sigs[source], exact[source]
    sigs[rng.choice(n, 6, replace=False)] = EMPTY  # no tokens
    rejected = rng.random(n) < 0.1
    for row in np.flatnonzero(rejected):  # a rejected copy of a kept document
        sigs[row], exact[row] = sigs[(row + 1) % n], exact[(row + 1) % n]
    return {"sigs": sigs, "exact": exact, "rejected": rejected}


def stage_files(tmp_path, docs: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The staged files (uids: read unit << 32 | row) and every row's uid."""
    paths, uids, start = [], [], 0
    for unit, size in enumerate(FILE_SIZES):
        rows = slice(start, start + size)
        uid = (np.int64(unit) << 32) | np.arange(size, dtype=np.int64)
        table = pa.table({
            col.UID: uid,
            col.STAGE: pa.array(np.where(docs["rejected"][rows], "quality", None), pa.string()),
            "id": pa.array([f"d{u}" for u in uid], pa.string()),
            col.EXACT_HI: docs["exact"][rows, 0],
            col.EXACT_LO: docs["exact"][rows, 1],
            col.MINHASH: pa.FixedSizeListArray.from_arrays(docs["sigs"][rows].reshape(-1), WIDTH),
        })  # fmt: skip
        paths.append(str(tmp_path / f"staged-{unit:05d}.parquet"))
        pq.write_table(table, paths[-1])
        uids.append(uid)
        start += size
    return paths, np.concatenate(uids)


def dedup_run(tmp_path, dedup: dict, partitions: int, mailboxes: int, seed: int = 0):
    cfg = config_from_dict({"dedup": dedup})
    docs = corpus(seed)
    paths, uids = stage_files(tmp_path, docs)
    (tmp_path / "decisions").mkdir()
    view = StagedView(
        cfg, resolve(str(tmp_path)), tuple(paths), tuple(pq.read_schema(paths[0]).names),
        str(tmp_path / "decisions"), partitions, has_ids=True,
    )  # fmt: skip
    params = params_for(cfg.dedup)
    groups = group_files(view.files, 2 * partitions)
    run = DedupRun(
        Exchange(mailboxes), view, groups, params.bands, params.rows, [("id", "ascending")]
    )
    return run, docs, uids


def reference_edges(docs, uids, cfg, bands: int, rows: int) -> set[tuple[int, int]]:
    """Every pair of kept documents: same exact hash, or a shared band key
    (both with tokens) and, with verify, enough equal signature values."""
    kept = np.flatnonzero(~docs["rejected"])
    sigs, exact = docs["sigs"], docs["exact"]
    keys = band_keys(sigs, bands, rows)
    has_tokens = ~(sigs == EMPTY).all(axis=1)
    edges = set()
    for a, b in itertools.combinations(kept, 2):
        same_text = cfg.exact and (exact[a] == exact[b]).all()
        near = (cfg.near and has_tokens[a] and has_tokens[b]
                and bool(np.intersect1d(keys[a], keys[b]).size))  # fmt: skip
        if near and cfg.verify:
            near = (sigs[a] == sigs[b]).mean() >= cfg.min_agreement()
        if same_text or near:
            edges.add((int(uids[b]), int(uids[a])))
    return edges


@pytest.mark.parametrize(
    ("dedup", "partitions", "mailboxes", "graph"),
    [({}, 1, 0, 1), ({}, 3, 2, 1), ({"verify": False}, 2, 0, 1), ({"near": False}, 2, 0, 2),
     ({"exact": False, "threshold": 0.7}, 3, 0, 3)],
    ids=["default", "mailboxes", "no-verify", "exact-only", "near-only"],
)  # fmt: skip
def test_scan_to_graph_finds_the_reference_components(ray_cluster, tmp_path, dedup, partitions,
                                                      mailboxes, graph, monkeypatch):  # fmt: skip
    # The graph on as many partitions as the rest, or on fewer (as past
    # GRAPH_SPREAD partitions): here one.
    if graph < partitions:
        monkeypatch.setattr(components, "GRAPH_SPREAD", 1)
    run, docs, uids = dedup_run(tmp_path, dedup, partitions, mailboxes)
    assert run.graph_partitions == graph
    try:
        outcome = run_sub_steps(run, until="graph")
        labels = pa.concat_tables(ray.get(run.labels))
    finally:
        run.ex.close()
    assert list(outcome.stats["seconds"]) == ["scan", "buckets", "verify", "graph"]
    assert run.decisions == {}  # keep did not run
    edges = reference_edges(docs, uids, run.cfg, run.bands, run.rows)
    assert edges, "the corpus has duplicates"
    hi, lo = (np.array(side, np.int64) for side in zip(*sorted(edges)))
    got = dict(zip(labels.column("node").to_pylist(), labels.column("label").to_pylist()))
    assert got == components_local(hi, lo)


def test_verify_alone_keeps_the_pairs_that_agree_enough(ray_cluster, tmp_path):
    """Candidate pairs given by hand (across groups, below and above the
    bound, a document with itself excluded): verify keeps exactly those
    whose signatures agree on at least min_agreement of their values."""
    run, docs, uids = dedup_run(tmp_path, {"threshold": 0.7}, 2, 0, seed=1)
    kept = np.flatnonzero(~docs["rejected"] & ~(docs["sigs"] == EMPTY).all(axis=1))
    rng = np.random.default_rng(2)
    a, b = rng.choice(kept, 400), rng.choice(kept, 400)
    a, b = np.maximum(a, b)[a != b], np.minimum(a, b)[a != b]
    same_base = [(x, y) for x, y in itertools.combinations(kept, 2)
                 if (docs["sigs"][x] == docs["sigs"][y]).mean() >= 0.5][:300]  # fmt: skip
    a = np.r_[a, [y for _, y in same_base]]
    b = np.r_[b, [x for x, _ in same_base]]
    pairs = {(int(uids[x]), int(uids[y])) for x, y in zip(a, b)}
    hi, lo = (np.array(side, np.int64) for side in zip(*sorted(pairs)))
    # What scan would have found: each group's files' uid ranges (lo > hi: empty).
    ranges = [[(f.index << 32, (f.index << 32) + FILE_SIZES[f.index] - 1) for f in g.files]
              for g in run.groups]  # fmt: skip
    run.indexes = file_indexes([ray.put(r) for r in ranges])
    owner = file_of(ray.get(run.indexes[1]), hi)  # the group holding each pair's first member
    run.candidates = [Pieces((ray.put(pairs_table(hi[owner == g], lo[owner == g])),))
                      for g in range(len(run.groups))]  # fmt: skip
    run.stats["candidate_pairs"] = len(pairs)  # buckets counts them; verify sizes its hop by them
    # Buckets opens the graph's first hop; verify sends its edges there.
    run.graph_hop = run.ex.hop(run.graph_partitions)
    verify(run)
    # The edges went into the graph's first hop both ways: (hi, lo) and (lo, hi).
    sent = pa.concat_tables(ray.get([piece for pieces in run.verified for piece in pieces]))
    got = {(h, lo) for h, lo in zip(sent.column("hi").to_pylist(), sent.column("lo").to_pylist())
           if h > lo}  # fmt: skip
    assert sent.num_rows == 2 * len(got)
    row = {int(u): i for i, u in enumerate(uids)}
    bound = run.cfg.min_agreement()
    want = {(x, y) for x, y in pairs
            if (docs["sigs"][row[x]] == docs["sigs"][row[y]]).mean() >= bound}  # fmt: skip
    assert 0 < len(want) < len(pairs)
    assert got == want
    assert run.stats["near_edges"] == len(want)
    # Each signature crossed once per group it was compared in, not once a pair.
    to_group = file_of(ray.get(run.indexes[1]), lo)
    assert run.stats["signatures_sent"] == len(set(zip(hi.tolist(), to_group.tolist())))
    assert run.stats["signatures_sent"] < len(pairs)


def test_keep_counts_the_decision_files_it_writes(ray_cluster, tmp_path):
    """keep's tasks return each decision file's rows and bytes, which the
    write pass takes instead of reading footers and a listing: the same as
    that reference (io/output.file_counts), the empty staged file included."""
    run, docs, uids = dedup_run(tmp_path, {}, 3, 2)
    try:
        run_sub_steps(run)
    finally:
        run.ex.close()
    paths = list(run.decisions)
    assert len(paths) == len(FILE_SIZES)
    assert run.decisions == file_counts(run.view.location, paths)
    assert run.decisions[paths[1]][0] == 0 < run.decisions[paths[1]][1]  # empty file, a footer
    assert sum(rows for rows, _ in run.decisions.values()) == run.stats["documents_in_components"]


def test_the_sub_steps_are_declared_in_order():
    assert [name for name, _ in SUB_STEPS] == ["scan", "buckets", "verify", "graph", "keep"]
