"""Dedup's graph sub-step alone (steps/dedup/components.py): connected
components of a duplicate-like graph, over P hash partitions, on a local
Ray. Prints, per P and exchange, the rounds, the Ray tasks the driver
submitted (counted as it submits them, by function), their number per
partition, the wall seconds of each repeat, and a digest of the labels
(which must not change with P, the exchange or the code).

The graph: --nodes documents in clusters of geometric size (mean 2.5,
dedup's near-duplicate clusters), each a random tree over its members, the
uids scattered over 2^40 so that chains take several rounds.

    .venv/bin/python benchmarks/components.py --partitions 10,50,200
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import time

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale.steps.dedup.components import connected_components
from dedupe_at_scale.steps.dedup.lsh import unique_pairs
from dedupe_at_scale.steps.exchange import Exchange


def duplicate_graph(nodes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Edges (hi, lo) of clusters of geometric size, each a random tree."""
    rng = np.random.default_rng(seed)
    sizes = rng.geometric(0.4, nodes)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), nodes) + 1]
    cluster = np.repeat(np.arange(len(sizes)), sizes)[:nodes]
    start = np.r_[0, np.flatnonzero(np.diff(cluster)) + 1]
    first = start[cluster]  # each node's cluster's first position
    position = np.arange(nodes)
    member = position > first
    # Each member after the first links to a random earlier one of its cluster.
    earlier = first[member] + (rng.random(member.sum()) * (position[member] - first[member]))
    uid = rng.choice(1 << 40, nodes, replace=False)
    return unique_pairs(uid[position[member]], uid[earlier.astype(np.int64)])


SUBMITTED: collections.Counter = collections.Counter()


def count_submissions() -> None:
    """Count each task the driver submits, by function name (Ray's own
    submit path, so every caller is counted)."""
    submit = ray.remote_function.RemoteFunction._remote

    def counted(self, *args, **kwargs):
        SUBMITTED[self._function_name.split(".")[-1]] += 1
        return submit(self, *args, **kwargs)

    ray.remote_function.RemoteFunction._remote = counted


def run_once(refs: list, partitions: int, mailboxes: int) -> tuple[float, int, str, dict]:
    """Wall seconds, rounds, labels digest, and tasks by function name."""
    SUBMITTED.clear()
    exchange = Exchange(mailboxes)
    started = time.perf_counter()
    try:
        label_refs, rounds = connected_components(exchange, refs, partitions)
        labels = pa.concat_tables(ray.get(label_refs))
    finally:
        exchange.close()
    seconds = time.perf_counter() - started
    tasks = dict(SUBMITTED)
    pairs = np.unique(
        np.c_[labels.column("node").to_numpy(), labels.column("label").to_numpy()], axis=0
    )
    return seconds, rounds, hashlib.sha256(pairs.tobytes()).hexdigest()[:12], tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--partitions", default="10,50,200")
    parser.add_argument("--exchanges", default="objects,mailboxes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    count_submissions()
    hi, lo = duplicate_graph(args.nodes)
    print(f"{args.nodes} nodes, {len(hi)} edges, {args.cpus} CPUs")
    print(f"{'P':>5} {'exchange':>9} {'rounds':>6} {'tasks':>6} {'a P':>5}  wall s        labels")
    for partitions in [int(p) for p in args.partitions.split(",")]:
        senders = np.array_split(np.arange(len(hi)), partitions)
        refs = [ray.put(pa.table({"hi": hi[s], "lo": lo[s]})) for s in senders]
        for name in args.exchanges.split(","):
            mailboxes = 0 if name == "objects" else 2
            runs = [run_once(refs, partitions, mailboxes) for _ in range(args.repeats)]
            rounds, digest, tasks = runs[0][1], runs[0][2], runs[0][3]
            assert all(r[1:3] == (rounds, digest) for r in runs), "labels changed between runs"
            total = sum(tasks.values())
            walls = " ".join(f"{r[0]:5.1f}" for r in runs)
            print(
                f"{partitions:>5} {name:>9} {rounds:>6} {total:>6} {total / partitions:>5.1f}  "
                f"{walls:<13} {digest}"
            )
            print(f"      tasks by function: {dict(sorted(tasks.items()))}")
    ray.shutdown()


if __name__ == "__main__":
    main()
