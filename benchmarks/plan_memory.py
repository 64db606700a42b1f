"""The driver's memory after planning, which reads every input footer in
threads on the driver below 256 files: RSS and anonymous memory before and
after `plan_job`, each size in a process of its own. Parquet footers grow with the documents (the text column's
min/max statistics are whole documents), so a driver that keeps them, or
their freed pages, grows with the corpus.

    .venv/bin/python benchmarks/plan_memory.py --docs 1000000,5000000
    .venv/bin/python benchmarks/plan_memory.py --input /data/st1m,/data/st5m  # corpora already made
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.job.plan import plan_job
from dedupe_at_scale.sample.streaming import generate_streaming

MiB = 2**20


def memory() -> tuple[float, float]:
    """(RSS, anonymous memory) of this process, in MiB."""
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    rollup = Path("/proc/self/smaps_rollup").read_text().splitlines()
    anon = next(int(line.split()[1]) for line in rollup if line.startswith("Anonymous:"))
    return rss / MiB, anon * 1024 / MiB


def measure(input_dir: str) -> None:
    """In a process of its own: plan the default job on `input_dir`."""
    gc.collect()
    rss, anon = memory()
    with tempfile.TemporaryDirectory() as out:
        plan = plan_job(input_dir, str(Path(out) / "out"), JobConfig())
        rss_after, anon_after = memory()
    documents = sum(f.num_rows or 0 for f in plan.files)
    print(f"{documents:>10} {len(plan.files):>6} {rss:>11.0f} {rss_after - rss:>8.0f} "
          f"{anon:>12.0f} {anon_after - anon:>8.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", default="1000000,5000000", help="streaming corpora to make")
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--input", help="comma-separated corpora already made, instead")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    print(f"{'documents':>10} {'files':>6} {'RSS before':>11} {'+ plan':>8} "
          f"{'anon before':>12} {'+ plan':>8}  (MiB)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        inputs = args.input.split(",") if args.input else []
        for docs in [] if args.input else [int(d) for d in args.docs.split(",")]:
            path = Path(tmp) / f"in-{docs}"
            generate_streaming(path, docs, args.shards, seed=5, processes=os.cpu_count() or 1)
            inputs.append(str(path))
        for path in inputs:
            command = [sys.executable, __file__, "--measure", path]
            print(
                subprocess.run(command, capture_output=True, text=True, check=True).stdout, end=""
            )


if __name__ == "__main__":
    main()
