"""What one all-to-all hop costs per piece (steps/exchange.py): G senders,
each splitting its rows into one piece per receiver, and G receivers, the
same rows in all (--rows) however many senders, so that what grows with G
is the pieces (G x G), not the bytes. Each G runs with both exchanges:
objects (one Ray object per piece, the reference) up to --objects-up-to
senders, and mailboxes; every receiver's rows are compared with the
objects run's (or, past it, with the rows sent, sorted the way a receiver
concatenates them: sender order).

Prints the hop's wall seconds (senders started to receivers done), the
core-seconds its tasks spent (summed inside them, Ray's start-up aside),
and the wall microseconds per piece: the constant benchmarks/cost_model.py
takes as --core-s-per-piece, times the cores.

    .venv/bin/python benchmarks/exchange.py --groups 100,200,400,800
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np
import pyarrow as pa
import ray

from dedupe_at_scale.steps.exchange import Exchange, receive
from dedupe_at_scale.steps.tasks import call, split


def _rows(src: int, rows: int, n_dst: int) -> tuple[pa.Table, np.ndarray]:
    """A sender's rows (two int64 columns, dedup's pairs) and destinations."""
    rng = np.random.default_rng(src)
    table = pa.table({"hi": np.full(rows, src), "lo": rng.integers(0, 1 << 40, rows)})
    return table, rng.integers(0, n_dst, rows)


@ray.remote
def _send(src: int, rows: int, n_dst: int, outbox):
    started = time.process_time()
    table, dest = _rows(src, rows, n_dst)
    sent = outbox.send(split(table, dest, n_dst))
    return [time.process_time() - started, *sent]


def _digest(table: pa.Table) -> str:
    """A receiver's rows, in their order."""
    return "".join(
        hashlib.sha256(table.column(name).to_numpy().tobytes()).hexdigest() for name in ("lo", "hi")
    )


@ray.remote
def _receive(pieces) -> tuple[float, str]:
    started = time.process_time()
    digest = _digest(receive(pieces))
    return time.process_time() - started, digest


def _expected(groups: int, rows: int) -> list[str]:
    """Each receiver's digest from the rows sent (`rows` a sender), without Ray."""
    per_dest: list[list[pa.Table]] = [[] for _ in range(groups)]
    for src in range(groups):
        for dest, piece in enumerate(split(*_rows(src, rows, groups), groups)):
            per_dest[dest].append(piece)
    return [_digest(pa.concat_tables(tables)) for tables in per_dest]


def one_hop(groups: int, rows: int, mailboxes: int) -> tuple[float, float, list[str]]:
    """(wall s, task core-s, receivers' digests) of one hop."""
    exchange = Exchange(mailboxes)
    try:
        hop = exchange.hop(groups)
        started = time.perf_counter()
        sent = [
            call(_send, 1 + hop.returns, s, rows // groups, groups, hop.outbox(s))
            for s in range(groups)
        ]
        cpu = sum(ray.get([s[0] for s in sent]))
        received = ray.get([_receive.remote(i) for i in hop.inboxes([s[1:] for s in sent])])
        wall = time.perf_counter() - started
        hop.release()
    finally:
        exchange.close()
    return wall, cpu + sum(r[0] for r in received), [r[1] for r in received]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", default="100,200,400,800")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the whole hop")
    parser.add_argument("--objects-up-to", type=int, default=400)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    print(f"one hop, {args.rows:,} rows of 16 bytes, {args.workers} workers")
    print(f"{'exchange':>9} {'G':>5} {'pieces':>9} {'wall s':>7} {'task core-s':>11} "
          f"{'wall us/piece':>13} {'same':>4}")  # fmt: skip
    fit: list[tuple[int, float]] = []
    for groups in [int(g) for g in args.groups.split(",")]:
        reference = None
        runs = [("objects", 0)] if groups <= args.objects_up_to else []
        for name, boxes in [*runs, ("mailboxes", 2 * len(ray.nodes()))]:
            wall, cpu, digests = one_hop(groups, args.rows, boxes)
            if reference is None:  # the objects run's, or the rows sent
                reference = digests if runs else _expected(groups, args.rows // groups)
            same = "yes" if digests == reference else "NO"
            print(f"{name:>9} {groups:>5} {groups * groups:>9,} {wall:>7.1f} {cpu:>11.1f} "
                  f"{1e6 * wall / groups**2:>13.1f} {same:>4}")  # fmt: skip
            if name == "mailboxes":
                fit.append((groups * groups, wall))
    if len(fit) > 1:
        # Wall = fixed + per_piece x pieces, least squares over the mailbox runs.
        per_piece, fixed = np.polyfit(*zip(*fit), 1)
        print(
            f"mailboxes: {fixed:.1f} s + {1e6 * per_piece:.1f} us a piece (wall, "
            f"{args.workers} workers: {1e3 * per_piece * args.workers:.3f} core-ms a piece)"
        )


if __name__ == "__main__":
    main()
