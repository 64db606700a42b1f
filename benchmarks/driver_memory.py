"""The driver's memory in the job's Ray Data passes over files, as the files
grow: each input file one read unit and one staged file, with each
operator's tasks in flight bounded (job/ray_settings.TasksInFlight, the job
as it runs) and without the bound, in the same run.

Each run is its own process (language ID and quality off, one read unit per
file); it reads its own anonymous memory (RssAnon: the heap of Python and of
Ray's core worker, not the object store's shared pages) before, during
(every 0.2 s) and after the annotate and write phases, with `malloc_trim`
before each reading. "per file" is the slope of each phase's peak above its
start, from the fewest files to the most.

    .venv/bin/python benchmarks/driver_memory.py                  # 250, 1,000, 4,000 files
    .venv/bin/python benchmarks/driver_memory.py --files 250,1000
    .venv/bin/python benchmarks/driver_memory.py --rows-per-shard 1000 --ways bounded
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dedupe_at_scale.io.output import OutputConfig

DOCS = 40_000
ROWS_PER_SHARD = OutputConfig().rows_per_shard
PHASES = ("annotate", "write_outputs")
CONFIG = {
    "langid": {"enabled": False},
    "quality": {"enabled": False},
    "input": {"min_rows_per_task": 1},
}


def anon_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon"):
            return int(line.split()[1]) >> 10
    raise RuntimeError("no RssAnon in /proc/self/status")


def settled_mib() -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return anon_mib()


def child(input_dir: str, output: str, bounded: bool, rows_per_shard: int) -> None:
    """Run the job here; print one JSON line of each phase's seconds and
    memory (start, peak, after)."""
    from dedupe_at_scale.cli.ray_cluster import connect
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job import pipeline, ray_settings

    connect(None, 2)
    if not bounded:
        ray_settings.TasksInFlight.can_add_input = lambda self, op: True
    peak = {"mib": 0, "on": False}

    def poll() -> None:
        while True:
            time.sleep(0.2)
            if peak["on"]:
                peak["mib"] = max(peak["mib"], anon_mib())

    threading.Thread(target=poll, daemon=True).start()
    seen: dict[str, dict] = {}

    def measured(name: str, phase):
        def run(*args, **kwargs):
            start = settled_mib()
            peak.update(mib=start, on=True)
            began = time.perf_counter()
            try:
                return phase(*args, **kwargs)
            finally:
                peak["on"] = False
                seen[name] = {
                    "s": time.perf_counter() - began, "start": start, "peak": peak["mib"],
                    "after": settled_mib(),
                }  # fmt: skip

        return run

    for name in PHASES:
        setattr(pipeline, name, measured(name, getattr(pipeline, name)))
    cfg = config_from_dict({**CONFIG, "output": {"rows_per_shard": rows_per_shard}})
    pipeline.run_job(input_dir, output, cfg)
    print(json.dumps(seen))


def make_input(work: Path, files: int) -> Path:
    path = work / f"in-{files}"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "dedupe_at_scale.cli", "generate", "--docs", str(DOCS),
             "--shards", str(files), "--streaming", "--output", str(path)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return path


def run(input_dir: Path, work: Path, bounded: bool, rows_per_shard: int) -> dict:
    output = work / "out"
    shutil.rmtree(output, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(input_dir), str(output),
         "bounded" if bounded else "unbounded", str(rows_per_shard)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", default="250,1000,4000")
    parser.add_argument("--rows-per-shard", type=int, default=ROWS_PER_SHARD,
                        help="output.rows_per_shard: data/'s shards, each written once "
                        "all its rows are read")  # fmt: skip
    parser.add_argument("--ways", default="bounded,unbounded")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] == "bounded", int(args.child[3]))
        return
    sizes = [int(x) for x in args.files.split(",")]
    ways = [w == "bounded" for w in args.ways.split(",")]
    print(f"{DOCS:,} generated documents in N files, one read unit and one staged file each; "
          f"output.rows_per_shard {args.rows_per_shard:,}; 2 CPUs; "
          "the driver's anonymous memory, MiB")  # fmt: skip
    print(f"{'files':>6} {'tasks in flight':>16} {'annotate s':>11} {'start->peak':>12} "
          f"{'write s':>8} {'start->peak':>12}")  # fmt: skip
    rises: dict[tuple[bool, str], list[tuple[int, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for files in sizes:
            input_dir = make_input(work, files)
            for bounded in ways:
                seen = run(input_dir, work, bounded, args.rows_per_shard)
                cells = []
                for name in PHASES:
                    p = seen[name]
                    rises.setdefault((bounded, name), []).append((files, p["peak"] - p["start"]))
                    cells.append(f"{p['s']:>{11 if name == 'annotate' else 8}.1f} "
                                 f"{p['start']:>5}->{p['peak']:<6}")  # fmt: skip
                way = "bounded" if bounded else "unbounded"
                print(f"{files:>6,} {way:>16} {' '.join(cells)}", flush=True)
    if len(sizes) > 1:
        for bounded in ways:
            slopes = []
            for name in PHASES:
                (f0, r0), (f1, r1) = rises[(bounded, name)][0], rises[(bounded, name)][-1]
                slopes.append(f"{name.split('_')[0]} {(r1 - r0) * 1024 / (f1 - f0):.1f}")
            way = "bounded" if bounded else "unbounded"
            print(f"peak above start, KiB per file ({way}): {', '.join(slopes)}")


if __name__ == "__main__":
    main()
