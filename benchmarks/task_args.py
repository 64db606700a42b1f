"""What the driver serializes per pass over the staged files, as their number
grows: each Ray Data read task (Ray Data puts every one in the object store
before the pass starts, and keeps them until it ends) and each task of
dedup's hops that takes a file index.

"all files" is how the tasks were built before (every staged file's decision
paths and sizes in each read task; the file index by value in each task
that takes one), the reference; "own file" is now (the task's own file's
decision entry; the index put once and passed by reference). The read task is
the write pass's, with dedup's decision (one file per staged file); the file
index is the one dedup's tasks take, in as many tasks as the sizing rules make
(staged files of 20,000 documents, a partition per 100,000 and four groups a
partition: P = files / 5; buckets and labels run P tasks, signatures,
keepers and decision writers 4P each; steps/base.py, steps/dedup/).

    .venv/bin/python benchmarks/task_args.py --files 100,1000,10000,50000
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import numpy as np
from ray import cloudpickle

from dedupe_at_scale.io.datasource import UnitDatasource, file_units
from dedupe_at_scale.io.staged import Decision, DecisionFiles, StagedSource, _read_unit
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.steps.dedup.edges import FileIndex

SAMPLED = 50  # tasks pickled to time one
INDEX_TASKS_PER_PARTITION = 14  # 2 x P + 3 x 4P tasks take a file index (docstring)


def _apply(index, table, decided):
    return table


def read_tasks(root: str, n: int, narrowed: bool) -> list:
    location = resolve(root)
    paths = [f"{root}/_staging/annotated/annotated-{i:010d}.parquet" for i in range(n)]
    decided = DecisionFiles(
        location, tuple(f"{root}/_staging/decisions/dedup-{i:05d}.parquet" for i in range(n)),
        tuple(range(40_000, 40_000 + n)),
    )  # fmt: skip
    decisions = [Decision(_apply, files=decided)]
    units = file_units(location, paths, {p: (20_000, 60_000_000) for p in paths})
    if narrowed:
        return StagedSource(location, units, None, decisions, None).get_read_tasks(1)
    # The reference: one read function, with every file's decisions, for all units.
    read = functools.partial(_read_unit, location, columns=None, decisions=decisions, then=None)
    return UnitDatasource(location, units, read).get_read_tasks(1)


def measure(objects: list) -> tuple[int, float]:
    """Bytes of one pickled object and seconds to pickle one (over a sample)."""
    sample = objects[:SAMPLED]
    started = time.perf_counter()
    sizes = [len(cloudpickle.dumps(o)) for o in sample]
    return int(np.mean(sizes)), (time.perf_counter() - started) / len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", default="100,1000,10000,50000", help="staged files")
    args = parser.parse_args()
    root = tempfile.gettempdir() + "/run-output"
    print("per pass over the staged files: one read task each; dedup: "
          f"{INDEX_TASKS_PER_PARTITION} x files / 5 tasks that take a file index")  # fmt: skip
    print(f"{'staged files':>12} {'way':>9} {'read task KiB':>14} {'pass MiB':>10} {'pass s':>8} "
          f"{'index KiB':>10} {'dedup MiB':>10}")  # fmt: skip
    for n in (int(x) for x in args.files.split(",")):
        index = FileIndex(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        index_tasks = INDEX_TASKS_PER_PARTITION * max(1, n // 5)
        for way, narrowed in (("all files", False), ("own file", True)):
            size, seconds = measure(read_tasks(root, n, narrowed))
            # By reference, a task carries the index's ObjectRef: tens of bytes.
            index_bytes = len(cloudpickle.dumps(index)) if not narrowed else 0
            print(f"{n:>12,} {way:>9} {size / 1024:>14.1f} {size * n / 2**20:>10.1f} "
                  f"{seconds * n:>8.1f} {index_bytes / 1024:>10.1f} "
                  f"{index_bytes * index_tasks / 2**20:>10.1f}")  # fmt: skip
    print("(pass MiB and s: every read task's pickle and the driver's time to make them; "
          "dedup MiB: the file index's copies in its tasks' arguments, 0 when it is put once)")  # fmt: skip


if __name__ == "__main__":
    main()
