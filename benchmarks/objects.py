"""What dedup's all-to-all costs the driver per object and per task: the same
small corpus (--docs documents in --files files, one read unit each, so one
staged file each) deduplicated with more and more hash partitions, forced
with dedup.partitions. Dedup's tasks read groups of consecutive staged files
(at most 4 per partition: G = min(files, 4P) groups), and its hops pass one
object per (group, partition) pair and per (group, group) pair.

Each partition count runs with both of the hops' exchanges
(steps/exchange.py): objects (one Ray object per piece: G x P and G x G per
hop, the reference) and mailboxes (actors own the receivers: the driver holds
G + P refs per hop). Prints, per run: the groups, the pieces of one hop, the
refs the driver holds for it, dedup's wall seconds, the driver's and the
workers' peak memory, and whether data/ and duplicates/ equal the objects
run's: the constants a cost model at 100 nodes extrapolates from.

    .venv/bin/python benchmarks/objects.py --partitions 25,100,400
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from common import run_cli  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--partitions", default="25,100,400")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--exchange", default="objects,mailboxes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_sample(root / "in", docs=args.docs, shards=args.files, seed=0)
        print(f"{args.docs} documents in {args.files} files (one staged file each), "
              f"{args.workers} workers")  # fmt: skip
        print(f"{'exchange':>9} {'P':>5} {'groups':>6} {'G x P':>7} {'G x G':>7} "
              f"{'driver refs':>11} {'dedup s':>8} {'driver MiB':>10} {'workers MiB':>11} "
              f"{'same':>4}")  # fmt: skip
        for partitions in [int(p) for p in args.partitions.split(",")]:
            reference = None
            for exchange in args.exchange.split(","):
                spec = {
                    "input": {"min_rows_per_task": 1},
                    "dedup": {"partitions": partitions, "exchange": exchange},
                }
                config = root / f"p{partitions}-{exchange}.yaml"
                config.write_text(yaml.safe_dump(spec))
                out = root / f"out-{partitions}-{exchange}"
                started = time.perf_counter()
                _, memory = run_cli(
                    "run", "--input", str(root / "in"), "--output", str(out),
                    "--config", str(config), "--num-cpus", str(args.workers), "--quiet",
                )  # fmt: skip
                manifest = json.loads((out / "manifest.json").read_text())
                dedup = manifest["dedup"]
                groups = dedup["file_groups"]
                dedup_s = manifest["timings"]["wall_seconds"]["dedup"]
                pieces = groups * max(partitions, groups)
                refs = pieces if dedup["exchange"] == "objects" else groups + partitions
                tables = [pq.read_table(out / d) for d in ("data", "duplicates")]
                reference = reference or tables
                same = all(t.equals(r) for t, r in zip(tables, reference))
                print(f"{dedup['exchange']:>9} {partitions:>5} {groups:>6} "
                      f"{groups * partitions:>7} {groups * groups:>7} {refs:>11} "
                      f"{dedup_s:>8.1f} {memory.driver_peak / 2**20:>10.0f} "
                      f"{memory.workers_peak / 2**20:>11.0f} {'yes' if same else 'NO':>4}"
                      f"   (run {time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
                shutil.rmtree(out)


if __name__ == "__main__":
    main()
