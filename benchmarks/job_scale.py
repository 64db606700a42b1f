"""The whole job (language ID, quality rules, global dedup) on a large
generated corpus on this machine: wall time per phase, docs/s per stage, and
peak memory of the driver and of Ray's workers.

    .venv/bin/python benchmarks/job_scale.py --docs 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import run_cli  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        input_dir, output = Path(tmp) / "in", Path(tmp) / "out"
        started = time.perf_counter()
        generate_sample(input_dir, docs=args.docs, shards=args.shards, seed=5)
        print(f"generated {args.docs} documents in {time.perf_counter() - started:.0f} s")
        wall, sampler = run_cli(
            "run", "--input", str(input_dir), "--output", str(output), "--quiet"
        )
        manifest = json.loads((output / "manifest.json").read_text())

    counts, timings = manifest["counts"], manifest["timings"]
    print(f"{args.docs} documents, {os.cpu_count()} cores: whole job {wall:.0f} s "
          f"({args.docs / wall:.0f} docs/s, including Ray start-up)")  # fmt: skip
    print(
        "phase wall seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings["wall_seconds"].items())
    )
    print(f"{'stage':10} {'in':>9} {'kept':>9} {'busy s':>8} {'docs/s/core':>12}")
    busy = timings["stage_busy_seconds"]
    for stage, c in counts["stages"].items():
        seconds = busy.get({"dedup": "minhash"}.get(stage, stage), 0.0)
        rate = f"{c['in'] / seconds:12.0f}" if seconds else f"{'':>12}"
        print(f"{stage:10} {c['in']:9d} {c['kept']:9d} {seconds:8.1f} {rate}")
    d = manifest["dedup"]
    print(f"dedup: {d['exact_duplicates_removed']} exact + {d['near_duplicates_removed']} near removed, "
          f"{d['clusters']} clusters; global steps {d['seconds']}")  # fmt: skip
    print(f"peak memory: {sampler.summary()}")
    print("(busy seconds are summed over workers; dedup's row is its signature step)")


if __name__ == "__main__":
    main()
