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
the core-seconds of the mailbox actors' processes over the hop, and the
wall microseconds per piece: the constant benchmarks/cost_model.py takes as
--core-s-per-piece, times the cores.

    .venv/bin/python benchmarks/exchange.py --groups 100,200,400,800
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np
import psutil
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


def _cpu_s(pids: list[int]) -> float:
    """User and system seconds the processes have used so far."""
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return sum(t.user + t.system for t in times)


def one_hop(groups: int, rows: int, mailboxes: int) -> tuple[float, float, float, list[str]]:
    """(wall s, task core-s, mailbox core-s, receivers' digests) of one hop."""
    exchange = Exchange(mailboxes)
    try:
        boxes = exchange.mailboxes or ()
        pids = ray.get([box.__ray_call__.remote(lambda self: os.getpid()) for box in boxes])
        hop = exchange.hop(groups)
        before = _cpu_s(pids)
        started = time.perf_counter()
        sent = [
            call(_send, 1 + hop.returns, s, rows // groups, groups, hop.outbox(s))
            for s in range(groups)
        ]
        cpu = sum(ray.get([s[0] for s in sent]))
        received = ray.get([_receive.remote(i) for i in hop.inboxes([s[1:] for s in sent])])
        wall = time.perf_counter() - started
        boxes_cpu = _cpu_s(pids) - before
        hop.release()
    finally:
        exchange.close()
    return wall, cpu + sum(r[0] for r in received), boxes_cpu, [r[1] for r in received]


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
          f"{'mailbox core-s':>14} {'wall us/piece':>13} {'same':>4}")  # fmt: skip
    fit: list[tuple[int, float, float]] = []
    for groups in [int(g) for g in args.groups.split(",")]:
        reference = None
        runs = [("objects", 0)] if groups <= args.objects_up_to else []
        for name, boxes in [*runs, ("mailboxes", 2 * len(ray.nodes()))]:
            wall, cpu, boxes_cpu, digests = one_hop(groups, args.rows, boxes)
            if reference is None:  # the objects run's, or the rows sent
                reference = digests if runs else _expected(groups, args.rows // groups)
            same = "yes" if digests == reference else "NO"
            print(f"{name:>9} {groups:>5} {groups * groups:>9,} {wall:>7.1f} {cpu:>11.1f} "
                  f"{boxes_cpu if boxes else 0:>14.1f} {1e6 * wall / groups**2:>13.1f} "
                  f"{same:>4}")  # fmt: skip
            if name == "mailboxes":
                fit.append((groups * groups, wall, boxes_cpu))
    if len(fit) > 1:
        # Least squares over the mailbox runs: wall = fixed + per_piece x
        # pieces, and the mailboxes' own CPU, where a piece's cost lands.
        pieces, walls, boxes_cpu = zip(*fit)
        per_piece, fixed = np.polyfit(pieces, walls, 1)
        in_boxes = np.polyfit(pieces, boxes_cpu, 1)[0]
        print(
            f"mailboxes: {fixed:.1f} s + {1e6 * per_piece:.1f} us a piece (wall, "
            f"{args.workers} workers: {1e3 * per_piece * args.workers:.3f} core-ms a piece); "
            f"in the mailboxes {1e6 * in_boxes:.1f} core-us a piece"
        )


if __name__ == "__main__":
    main()
