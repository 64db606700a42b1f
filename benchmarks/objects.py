"""What dedup's all-to-all costs the driver per object and per task: the same
small corpus (--docs documents in --files files, one read unit each, so one
staged file each) deduplicated with more and more hash partitions, forced
with dedup.partitions. Dedup's tasks read groups of consecutive staged files
(at most 4 per partition: G = min(files, 4P) groups), and its hops pass one
object per (group, partition) pair and per (group, group) pair.

Prints, per partition count: the groups, the objects of one hop (G x P and
G x G), dedup's wall seconds, the driver's and the workers' peak memory, and
the seconds per thousand objects: the constants a cost model at 100 nodes
extrapolates from.

    .venv/bin/python benchmarks/objects.py --partitions 25,100,400
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_sample(root / "in", docs=args.docs, shards=args.files, seed=0)
        print(f"{args.docs} documents in {args.files} files (one staged file each), "
              f"{args.workers} workers")  # fmt: skip
        print(f"{'P':>6} {'groups':>6} {'G x P':>8} {'G x G':>8} {'dedup s':>8} "
              f"{'s/1k obj':>8} {'driver MiB':>10} {'workers MiB':>11}")  # fmt: skip
        for partitions in [int(p) for p in args.partitions.split(",")]:
            spec = {"input": {"min_rows_per_task": 1}, "dedup": {"partitions": partitions}}
            config = root / f"p{partitions}.yaml"
            config.write_text(yaml.safe_dump(spec))
            out = root / f"out-{partitions}"
            started = time.perf_counter()
            _, memory = run_cli(
                "run", "--input", str(root / "in"), "--output", str(out), "--config", str(config),
                "--num-cpus", str(args.workers), "--overwrite", "--quiet",
            )  # fmt: skip
            manifest = json.loads((out / "manifest.json").read_text())
            groups = manifest["dedup"].get("file_groups", min(args.files, 4 * partitions))
            dedup_s = manifest["timings"]["wall_seconds"]["dedup"]
            objects = groups * partitions + groups * groups
            print(f"{partitions:>6} {groups:>6} {groups * partitions:>8} {groups * groups:>8} "
                  f"{dedup_s:>8.1f} {1000 * dedup_s / objects:>8.3f} "
                  f"{memory.driver_peak / 2**20:>10.0f} {memory.workers_peak / 2**20:>11.0f}"
                  f"   (run {time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
