"""Many small input files against the same documents in a few files.

A lake written by streaming ingestion holds thousands of files of a few
documents each. This generates the documents once, writes them as 8 shards
(the baseline) and as files of --file-docs documents, runs the default job on
each with the same CPUs, and prints wall time, phases, read units and whether
data/ came out the same.

    .venv/bin/python benchmarks/small_files.py                 # 6,000 documents, files of 3
    .venv/bin/python benchmarks/small_files.py --min-rows 0    # one read task per file
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common import run_job
from dedupe_at_scale.sample import generate_sample


def phases(manifest: dict) -> str:
    wall = manifest["timings"]["wall_seconds"]
    names = ("annotate", "ids", "dedup", "write")
    return ", ".join(f"{k} {wall[k]:.1f}" for k in names if k in wall)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=6000)
    parser.add_argument("--file-docs", type=int, default=3)
    parser.add_argument("--min-rows", type=int, default=200, help="input.min_rows_per_task")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="small-files-"))
    try:
        few, many = root / "few", root / "many"
        generate_sample(few, docs=args.docs, shards=8, seed=0)
        table = pa.concat_tables(pq.read_table(p) for p in sorted(few.glob("*.parquet")))
        many.mkdir()
        for i in range(0, table.num_rows, args.file_docs):
            pq.write_table(table.slice(i, args.file_docs), many / f"part-{i:07d}.parquet")
        files = len(list(many.glob("*.parquet")))
        spec = {"input": {"min_rows_per_task": args.min_rows}}
        base_wall, base = run_job(few, root / "few-out", args.workers, spec)
        wall, manifest = run_job(many, root / "many-out", args.workers, spec)
        same = pq.read_table(root / "few-out" / "data").equals(
            pq.read_table(root / "many-out" / "data")
        )
        print(f"{args.docs:,} documents, {args.workers} CPUs, min_rows_per_task {args.min_rows}")
        rows = (("8 files", base_wall, base), (f"{files:,} files", wall, manifest))
        for name, seconds, m in rows:
            print(
                f"  {name:>12}: wall {seconds:6.1f} s, {m['annotate']['units']:5d} read units; "
                f"phases {phases(m)}"
            )
        print(f"  small files / 8 files: {wall / base_wall:.2f}x wall; same data/: {same}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
