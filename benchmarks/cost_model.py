"""What the job costs at sizes this machine cannot run: tasks, objects, bytes
shuffled and driver memory for 100M, 1B and 10B documents on 10, 100 and
1,000 nodes of 64 cores, from constants measured here (each names the
benchmark that measured it; pass another value to see its effect).

    .venv/bin/python benchmarks/cost_model.py
    .venv/bin/python benchmarks/cost_model.py --docs-per-core-s 700   # real text

The sizing rules are the job's own (steps/base.py, steps/dedup/tasks.py,
steps/exchange.py): read units of input.rows_per_task documents, one hash
partition per 100,000 documents, at most four
staged-file groups per partition, 16 bands of 8 rows, mailboxes (two per
node) once a hop would pass more than 20,000 objects; together they hold a
quarter of the node's object store (Ray's default: 30% of its memory) in
memory and the rest of a hop in files on the node's disk.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# The job's own sizing rules, from the package (not copies that could drift).
from dedupe_at_scale.io.datasource import files_per_task, read_task_count
from dedupe_at_scale.io.inputs import InputConfig
from dedupe_at_scale.io.mailbox import MAILBOXES_PER_NODE, STORE_SHARE
from dedupe_at_scale.io.output import OutputConfig
from dedupe_at_scale.job.annotate import units_per_pass
from dedupe_at_scale.job.ray_settings import TASKS_IN_FLIGHT_PER_SLOT, TASKS_QUEUED, tasks_in_flight
from dedupe_at_scale.steps.base import DOCS_PER_PARTITION, group_count
from dedupe_at_scale.steps.dedup.components import graph_partitions
from dedupe_at_scale.steps.exchange import AUTO_MAX_OBJECTS

ROWS_PER_TASK = InputConfig().rows_per_task  # one staged file each
BANDS = 16
# Scan hop bytes per kept document: the exact key (hi, lo, uid: 3 x 8 B) and
# one (key, uid, exact) row of 3 x 8 B per band.
SCAN_BYTES_PER_DOC = 24 + BANDS * 24
# Verify hop: a pair is (hi, lo, an offset) of 8 B each, a signature 128 x 4 B.
PAIR_BYTES, SIGNATURE_BYTES = 24, 128 * 4
CORES_PER_NODE = 64
# Per input document, at 5M generated documents (job_scale.py): they grow with
# the corpus on the generator, whose sentences come from a fixed bank.
PAIRS_PER_DOC, SIGNATURES_PER_DOC = 7.17, 6.08
LIST_PAGE = 1000  # keys per S3 ListObjectsV2 page
GiB = 2**30
# benchmarks/driver_memory.py (docs/scaling.md), per file of the write pass:
# what a read task holds until the pass ends (with shards of 1,000 rows);
# what a task in flight adds (unbounded less bounded); and what a block
# waiting for the rest of its shard holds (one shard of every row, less
# shards of 1,000 rows).
READ_TASK_BYTES = 4_500
# ... and per file a pass reads, with 16 files a read task (driver_memory.py
# --ways bounded, 2026-12-07: the write pass's peak rose 1.9 KiB a file from
# 250 to 4,000 staged files, while its tasks went 84, 67, 250).
READ_FILE_BYTES = 1_900
IN_FLIGHT_BYTES = 33_000
WAITING_BLOCK_BYTES = 19_000
ROWS_PER_SHARD = OutputConfig().rows_per_shard
# What a node's mailboxes hold in memory (io/mailbox.STORE_SHARE of an object
# store of 30% of the node's memory); the rest of a hop goes to their files.
MAILBOX_MEMORY_SHARE = STORE_SHARE * 0.3


@dataclass(frozen=True)
class Constants:
    driver_bytes_per_ref: float  # benchmarks/objects.py: driver RSS per object held
    driver_base_gib: float  # benchmarks/objects.py: driver RSS with mailboxes
    driver_s_per_task: float  # benchmarks/cost_model.py --measure: submit + get a task
    docs_per_core_s: float  # benchmarks/job_scale.py: whole job, per core
    graph_rounds: int  # manifests: dedup.graph_rounds
    request_s: float  # object store latency (the proxy's 20 ms)
    docs_per_input_file: int
    head_memory_gib: float
    node_memory_gib: float
    node_disk_gib: float  # local disk for the mailboxes' files
    pairs_per_doc: float  # benchmarks/job_scale.py: dedup's candidate pairs a document
    signatures_per_doc: float  # benchmarks/job_scale.py: dedup.signatures_sent a document
    # benchmarks/job_scale.py --generator streaming, 5M and 20M: dedup's wall
    # time less a fixed time per document, per piece of its largest hop, x 2
    # cores (0.98 ms), times what packing the mailboxes' pieces left of a
    # hop's cost per piece (benchmarks/exchange.py: 0.032 / 0.255 core-ms),
    # and then keeping each put whole in the mailboxes (0.011 / 0.022)
    core_s_per_piece: float = 0.00098 * 0.032 / 0.255 * 0.011 / 0.022
    # benchmarks/driver_memory.py: the anonymous memory a Ray Data pass holds
    # per read task until it ends, per task in flight, and per block that
    # waits for the rest of its shard.
    driver_bytes_per_read_task: float = READ_TASK_BYTES
    driver_bytes_per_read_file: float = READ_FILE_BYTES
    driver_bytes_per_task_in_flight: float = IN_FLIGHT_BYTES
    driver_bytes_per_waiting_block: float = WAITING_BLOCK_BYTES
    # Manifests' timings.driver_cpu_seconds: the driver's CPU a read task of a
    # Ray Data pass, in annotate (a task per unit): 17.4-18.1 s over 4,000
    # units, 4.2-4.4 s over 1,000 (dedup only, 40,000 documents).
    driver_s_per_read_task: float = 0.0044
    # ... and for each second a pass runs: Ray Data's executor loop polls
    # while its tasks run (benchmarks/pass_tasks.py --sleep-s 0,0.5,1: 0.026
    # to 0.033 s a second). A read task of 16 files costs the driver no more
    # than a task of one (9.45 against 9.39 ms, 16 blocks a task), so files
    # past a task's first are not counted.
    driver_cpu_per_pass_second: float = 0.03
    # Documents removed as duplicates, a share of the input: 6,836 of 28,606
    # in the dedup-only job on the real text (benchmarks/dedup_speed.py).
    duplicates_per_doc: float = 0.24


@dataclass(frozen=True)
class Sizing:
    docs: int
    nodes: int
    docs_per_partition: int = DOCS_PER_PARTITION

    @property
    def cores(self) -> int:
        return self.nodes * CORES_PER_NODE

    @property
    def staged_files(self) -> int:
        return math.ceil(self.docs / ROWS_PER_TASK)

    @property
    def partitions(self) -> int:
        return max(1, math.ceil(self.docs / self.docs_per_partition))

    @property
    def groups(self) -> int:
        return min(self.staged_files, group_count(self.partitions))

    @property
    def pieces_per_hop(self) -> int:
        """Largest hop: every group to every partition, or to every group."""
        return self.groups * max(self.partitions, self.groups)

    @property
    def mailboxes(self) -> int:
        receivers = max(self.partitions, self.groups)
        return (
            0
            if self.pieces_per_hop <= AUTO_MAX_OBJECTS
            else min(receivers, MAILBOXES_PER_NODE * self.nodes)
        )

    @property
    def write_tasks(self) -> int:
        """The write pass's read tasks (io/datasource.files_per_task)."""
        return _grouped(self.staged_files)

    def duplicates_tasks(self, duplicates_per_doc: float) -> int:
        """The duplicates/ pass's read tasks: the decision files (one a
        staged file) gathered until a shard's rows, as its write gathers
        them (io/datasource.write_bundles)."""
        shards = math.ceil(self.docs * duplicates_per_doc / ROWS_PER_SHARD)
        return max(1, min(self.staged_files, shards))

    def annotate_tasks(self, pass_units: int) -> int:
        """Annotate's read tasks, in passes of `pass_units` units (the last
        may be shorter), each grouped as io/datasource.files_per_task says."""
        full, rest = divmod(self.staged_files, pass_units)
        return full * _grouped(pass_units) + (_grouped(rest) if rest else 0)

    def dedup_tasks(self, rounds: int) -> int:
        # Per group: scan, attach, verify (which sends its edges into the
        # graph), members, write decisions; per partition: buckets (which
        # sends its exact edges into the graph), keep; per graph partition
        # (a tenth of the partitions past 160): route labels, and two per round
        # (large-star and small-star, each sending its edges on). As counted
        # in a job (tests/test_dedup_job.py; docs/scaling.md, "Fewer tasks in
        # dedup's graph" and "The graph on a tenth of the partitions").
        graph = graph_partitions(self.partitions)
        return 5 * self.groups + 2 * self.partitions + (1 + 2 * rounds) * graph


def _grouped(files: int) -> int:
    """Read tasks of a pass over `files` files, as the job groups them."""
    return read_task_count(files, files_per_task(files))


def pass_gib(
    read_tasks: int, cores: int, c: Constants, waiting_blocks: int = 0, files: int = 0
) -> float:
    """The driver's memory in a Ray Data pass of `read_tasks` one-CPU read
    tasks over `files` files: some for each task or file (whichever is
    more) until the pass ends, more for each task in flight
    (job/ray_settings.tasks_in_flight of them at most), and for each of the
    `waiting_blocks` that wait for their shard."""
    in_flight = min(read_tasks, tasks_in_flight(cores, 1.0))
    held = max(read_tasks * c.driver_bytes_per_read_task, files * c.driver_bytes_per_read_file)
    held += in_flight * c.driver_bytes_per_task_in_flight
    return (held + waiting_blocks * c.driver_bytes_per_waiting_block) / GiB


def row(s: Sizing, c: Constants) -> dict[str, str]:
    # Two hops' refs are alive at once (a hop is released after the next
    # one's barrier); with mailboxes, one ref per sender and receiver.
    refs = s.pieces_per_hop if not s.mailboxes else s.groups + s.partitions
    # Annotate's passes are of units_per_pass units, each unit's rows staged
    # by its own task. The write pass takes every staged file at once; a
    # shard is written once all its blocks are read, in order: the blocks
    # of the tasks in flight and of one shard wait at most (stragglers
    # aside, which the model leaves out).
    pass_units = units_per_pass(s.cores)
    pass_files = min(s.staged_files, pass_units)
    annotate_gib = pass_gib(_grouped(pass_files), s.cores, c, files=pass_files)
    waiting = min(s.staged_files, tasks_in_flight(s.cores, 1.0) + ROWS_PER_SHARD // ROWS_PER_TASK)
    write_gib = pass_gib(s.write_tasks, s.cores, c, waiting, files=s.staged_files)
    dedup_gib = 2 * refs * c.driver_bytes_per_ref / GiB
    driver_gib = c.driver_base_gib + max(dedup_gib, annotate_gib, write_gib)
    objects_gib = c.driver_base_gib + 2 * s.pieces_per_hop * c.driver_bytes_per_ref / GiB
    scan_gib = s.docs * SCAN_BYTES_PER_DOC / GiB
    verify_bytes = c.pairs_per_doc * PAIR_BYTES + c.signatures_per_doc * SIGNATURE_BYTES
    verify_gib = s.docs * verify_bytes / GiB
    # The largest hop, held by the node's mailboxes (or its object store).
    per_node = max(scan_gib, verify_gib) / s.nodes
    on_disk = max(0.0, per_node - MAILBOX_MEMORY_SHARE * c.node_memory_gib) if s.mailboxes else 0
    compute_min = s.docs / (c.docs_per_core_s * s.cores) / 60
    tasks = s.dedup_tasks(c.graph_rounds)
    submit_min = tasks * c.driver_s_per_task / 60
    # Handling the pieces of every hop (senders, mailboxes, receivers) on all cores.
    exchange_min = s.pieces_per_hop * c.core_s_per_piece / s.cores / 60
    list_s = math.ceil(s.docs / c.docs_per_input_file / LIST_PAGE) * c.request_s
    # Ray Data's passes: annotate and the write pass (files_per_task units
    # or staged files a task), and the pass writing duplicates/ from dedup's
    # decision files (a task per shard of duplicates).
    annotate_tasks = s.annotate_tasks(pass_units)
    duplicates_tasks = s.duplicates_tasks(c.duplicates_per_doc)
    pass_tasks = annotate_tasks + s.write_tasks + duplicates_tasks
    # The passes run within the job's compute time, at most all of it.
    passes_min = (pass_tasks * c.driver_s_per_read_task / 60
                  + compute_min * c.driver_cpu_per_pass_second)  # fmt: skip
    limits = []
    if driver_gib > c.head_memory_gib:
        limits.append("driver memory")
    if s.mailboxes and on_disk > c.node_disk_gib:
        limits.append("mailbox disk")
    if passes_min > compute_min:
        limits.append("Ray Data's passes on the driver")
    if submit_min > compute_min:
        limits.append("dedup tasks on the driver")
    if list_s / 60 > compute_min:
        limits.append("listing")
    if exchange_min > compute_min:
        limits.append("dedup's pieces")
    return {
        "docs": {10**8: "100M", 10**9: "1B", 10**10: "10B"}.get(s.docs, f"{s.docs:.0e}"),
        "nodes": str(s.nodes),
        "P": str(s.partitions),
        "groups": str(s.groups),
        "annotate tasks": str(annotate_tasks),
        "write tasks": str(s.write_tasks),
        "duplicates tasks": str(duplicates_tasks),
        "dedup tasks": str(tasks),
        "hop pieces": f"{s.pieces_per_hop:.1e}",
        "mailboxes": str(s.mailboxes),
        "annotate pass GiB": f"{annotate_gib:,.1f}",
        "write pass GiB": f"{write_gib:,.1f}",
        "driver GiB": f"{driver_gib:,.1f}",
        "(objects)": f"{objects_gib:,.0f}",
        "scan hop GiB": f"{scan_gib:,.0f}",
        "verify hop GiB": f"{verify_gib:,.0f}",
        "per node GiB": f"{per_node:,.1f}",
        "on disk GiB": f"{on_disk:,.1f}",
        "compute min": f"{compute_min:,.1f}",
        "passes driver min": f"{passes_min:,.1f}",
        "dedup submit min": f"{submit_min:,.1f}",
        "pieces min": f"{exchange_min:,.1f}",
        "list s": f"{list_s:,.1f}",
        "first limit": ", ".join(limits) or "-",
    }


def measure_task_seconds(tasks: int = 5000) -> float:
    """Seconds the driver spends per task: submit `tasks` no-op tasks on a
    local Ray and wait for them (on this machine, with its cores busy)."""
    import time

    import ray

    ray.init(address="local", include_dashboard=False, logging_level="ERROR")

    @ray.remote(num_cpus=0.25)
    def noop(x: int) -> int:
        return x

    ray.get([noop.remote(i) for i in range(200)])  # warm the worker pool
    started = time.perf_counter()
    ray.get([noop.remote(i) for i in range(tasks)])
    seconds = (time.perf_counter() - started) / tasks
    ray.shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--driver-bytes-per-ref", type=float, default=12_000)
    parser.add_argument("--driver-base-gib", type=float, default=0.45)
    parser.add_argument("--driver-s-per-task", type=float, default=None,
                        help="default: measured now (--measure-tasks no-op tasks)")  # fmt: skip
    parser.add_argument("--measure-tasks", type=int, default=5000)
    parser.add_argument("--docs-per-core-s", type=float, default=3_000)
    parser.add_argument("--docs-per-partition", type=int, default=DOCS_PER_PARTITION,
                        help="what dedup.partitions would set: documents / this")  # fmt: skip
    parser.add_argument("--graph-rounds", type=int, default=4)
    parser.add_argument("--request-s", type=float, default=0.02)
    parser.add_argument("--docs-per-input-file", type=int, default=100_000)
    parser.add_argument("--head-memory-gib", type=float, default=64)
    parser.add_argument("--node-memory-gib", type=float, default=256)
    parser.add_argument("--node-disk-gib", type=float, default=1_000)
    parser.add_argument("--pairs-per-doc", type=float, default=PAIRS_PER_DOC)
    parser.add_argument("--signatures-per-doc", type=float, default=SIGNATURES_PER_DOC)
    parser.add_argument("--core-s-per-piece", type=float, default=Constants.core_s_per_piece)
    parser.add_argument("--driver-bytes-per-read-task", type=float,
                        default=Constants.driver_bytes_per_read_task)  # fmt: skip
    parser.add_argument("--driver-bytes-per-read-file", type=float,
                        default=Constants.driver_bytes_per_read_file)  # fmt: skip
    parser.add_argument("--driver-bytes-per-task-in-flight", type=float,
                        default=Constants.driver_bytes_per_task_in_flight)  # fmt: skip
    parser.add_argument("--driver-bytes-per-waiting-block", type=float,
                        default=Constants.driver_bytes_per_waiting_block)  # fmt: skip
    parser.add_argument("--driver-s-per-read-task", type=float,
                        default=Constants.driver_s_per_read_task)  # fmt: skip
    parser.add_argument("--driver-cpu-per-pass-second", type=float,
                        default=Constants.driver_cpu_per_pass_second)  # fmt: skip
    parser.add_argument("--duplicates-per-doc", type=float,
                        default=Constants.duplicates_per_doc)  # fmt: skip
    args = parser.parse_args()
    per_task = args.driver_s_per_task
    if per_task is None:
        per_task = measure_task_seconds(args.measure_tasks)
        print(f"measured: {1000 * per_task:.2f} ms of driver time per task "
              f"({args.measure_tasks} no-op tasks on a local Ray)")  # fmt: skip
    c = Constants(
        args.driver_bytes_per_ref, args.driver_base_gib, per_task, args.docs_per_core_s,
        args.graph_rounds, args.request_s, args.docs_per_input_file, args.head_memory_gib,
        args.node_memory_gib, args.node_disk_gib, args.pairs_per_doc, args.signatures_per_doc,
        args.core_s_per_piece, args.driver_bytes_per_read_task, args.driver_bytes_per_read_file,
        args.driver_bytes_per_task_in_flight, args.driver_bytes_per_waiting_block,
        args.driver_s_per_read_task, args.driver_cpu_per_pass_second, args.duplicates_per_doc,
    )  # fmt: skip
    rows = [
        row(Sizing(docs, nodes, args.docs_per_partition), c)
        for docs in (10**8, 10**9, 10**10)
        for nodes in (10, 100, 1000)
    ]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    print("  ".join(k.rjust(w) for k, w in widths.items()))
    for r in rows:
        print("  ".join(r[k].rjust(w) for k, w in widths.items()))
    print(
        f"({CORES_PER_NODE} cores a node; {c.driver_bytes_per_ref:,.0f} driver bytes per ref; "
        f"{1000 * c.driver_s_per_task:.2f} ms per task; {c.docs_per_core_s:,.0f} docs/s a core; "
        f"a Ray Data pass's driver bytes: {c.driver_bytes_per_read_task:,.0f} per read task or "
        f"{c.driver_bytes_per_read_file:,.0f} per file read (the more), "
        f"{c.driver_bytes_per_task_in_flight:,.0f} per task in flight (at most "
        f"{TASKS_IN_FLIGHT_PER_SLOT} a core and {TASKS_QUEUED} more), "
        f"{c.driver_bytes_per_waiting_block:,.0f} per block waiting for its shard; "
        f"duplicates/ read a task per shard, {c.duplicates_per_doc:.2f} duplicates a document. "
        f"(objects): the driver with dedup.exchange: objects. Limits: driver over "
        f"{c.head_memory_gib:.0f} GiB; what a node's mailboxes write of the largest hop over its "
        f"{c.node_disk_gib:,.0f} GiB of disk; submitting dedup's tasks, "
        f"listing the input, Ray Data's read tasks ({1000 * c.driver_s_per_read_task:.1f} "
        f"ms each on the driver, and {c.driver_cpu_per_pass_second:.2f} s a second a pass "
        f"runs) or handling dedup's pieces ({1000 * c.core_s_per_piece:.2f} "
        f"core-ms each) longer than the compute)"
    )


if __name__ == "__main__":
    main()
