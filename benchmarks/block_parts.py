"""The write pass's parts (one per staged file: counts per stage, rule and
language, step summaries, the report's histograms) on the driver, as the
staged files grow: every part read and kept on the driver (the way before
job/block_parts.py, the reference) against the parts folded in tasks.

The parts are real: the default job on real text (real_text.py) leaves one
per staged file, and they are copied over and over to make 250 to 16,000.
Each way runs in a process of its own, connected to one local Ray, after a
read of a few parts has started its workers; it reads all the parts twice and
prints the seconds of each read, its RSS before the first, the peak growth
during it and what it still holds after (the result), and
a digest of what the manifest and report.json take from the parts (token
counts, counts per stage, rule and language, report data), which must be
the same both ways.

    .venv/bin/python benchmarks/block_parts.py --parts 250,1000,4000,16000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ray  # noqa: E402

from dedupe_at_scale.config import JobConfig  # noqa: E402
from dedupe_at_scale.io.fanout import fold_files, map_files  # noqa: E402
from dedupe_at_scale.io.storage import read_json, resolve  # noqa: E402
from dedupe_at_scale.job import write  # noqa: E402
from dedupe_at_scale.job.accounting import STAT_KEYS  # noqa: E402
from dedupe_at_scale.job.block_parts import PROFILE, STATS, SUMMARY, PartFold  # noqa: E402
from dedupe_at_scale.job.manifest import token_counts  # noqa: E402
from dedupe_at_scale.job.pipeline import run_job  # noqa: E402
from dedupe_at_scale.job.profile import ReportSpec, merge_profiles  # noqa: E402
from real_text import write_real_corpus  # noqa: E402


def real_parts(root: Path, real_mb: float) -> tuple[list[Path], dict]:
    """The parts the default job leaves on real text, and its summaries' keys."""
    kept, read, keys = root / "parts", write._read_stats, {}

    def keep_parts(location, stats_dir, n_files, fold):  # the job's own read, after a copy
        shutil.copytree(stats_dir, kept)
        keys.update(fold.summary_keys)
        return read(location, stats_dir, n_files, fold)

    write._read_stats = keep_parts
    write_real_corpus(root / "in", real_mb, 32)
    run_job(str(root / "in"), str(root / "out"), JobConfig())
    write._read_stats = read
    return sorted(kept.glob("block-*.json")), keys


def all_parts(paths: list[str]) -> tuple[list, dict]:
    """The reference: the driver's read before the fold (write._read_stats)."""
    parts = map_files(resolve(str(Path(paths[0]).parent)), paths, read_json)
    summaries: dict[str, list] = {}
    for part in parts:
        for name, rows in part[SUMMARY].items():
            summaries.setdefault(name, []).extend(rows)
    return [row for part in parts for row in part[STATS]], summaries


class PeakRss(threading.Thread):
    """This process's RSS, sampled every 5 ms: its peak since start()."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = rss(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, rss())


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(way: str, directory: Path, address: str) -> None:
    """In a process of its own: one way's read, its RSS and its digest."""
    ray.init(address=address, logging_level="WARNING")
    meta = json.loads((directory / "meta.json").read_text())
    spec = ReportSpec.of(JobConfig())
    paths = [str(p) for p in sorted(directory.glob("block-*.json"))]
    fold = PartFold({k: tuple(v) for k, v in meta["keys"].items()}, spec)
    location = resolve(str(directory))
    # This job's workers start and import the project first, as in a job: as
    # many as either way runs at once.
    fold_files(location, paths[:4], read_json, fold, chunk=1, fan_in=4)
    map_files(location, paths[:4], read_json, chunk=1)
    seconds, memory = [], []
    for _ in range(2):  # the second read finds every worker warm
        stats = summaries = None
        before, sampler = rss(), PeakRss()
        sampler.start()
        started = time.perf_counter()
        if way == "all":
            stats, summaries = all_parts(paths)
        else:
            part = fold_files(location, paths, read_json, fold)
            stats, summaries = part[STATS], part[SUMMARY]
        seconds.append(time.perf_counter() - started)
        sampler.done.set()
        sampler.join()
        memory.append((before, sampler.peak, rss()))
    before, peak, held = memory[0]  # the second starts where malloc kept the first's memory
    rows = {}
    for row in stats:
        into = rows.setdefault("|".join(str(row[k]) for k in STAT_KEYS), {})
        for name, value in row.items():
            if name not in STAT_KEYS and "seconds" not in name:  # busy seconds: float sums
                into[name] = into.get(name, 0) + value
    seen = [token_counts(stats, "kept"), rows, merge_profiles(summaries.get(PROFILE, []), spec)]
    digest = hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:12]
    print(json.dumps({"seconds": seconds, "before": before, "peak": peak, "held": held,
                      "digest": digest, "stats_rows": len(stats)}))  # fmt: skip
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="250,1000,4000,16000")
    parser.add_argument("--real-mb", type=float, default=60)
    parser.add_argument("--measure", choices=["all", "folded"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure, args.dir, args.address)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        sources, keys = real_parts(root, args.real_mb)
        address = ray.get_runtime_context().gcs_address
        size = sum(p.stat().st_size for p in sources) / len(sources)
        print(f"{len(sources)} real parts from the default job on {args.real_mb:g} MB of real "
              f"text, {size / 1024:.0f} KB each on average (JSON)")  # fmt: skip
        print(
            "read s: the first read and the second; driver MiB: RSS before the first read, "
            "its peak growth during it, and the growth still held after it (the result)"
        )
        print(f"{'parts':>7} {'way':>7} {'read s':>11} {'MiB before':>11} {'peak +':>7} "
              f"{'held +':>7} {'stats rows':>11} digest")  # fmt: skip
        for n in [int(x) for x in args.parts.split(",")]:
            directory = root / f"n{n}"
            directory.mkdir()
            for i in range(n):
                shutil.copyfile(sources[i % len(sources)], directory / f"block-{i:05d}.json")
            (directory / "meta.json").write_text(json.dumps({"keys": keys}))
            for way in ("all", "folded"):
                command = [sys.executable, __file__, "--measure", way, "--dir", str(directory),
                           "--address", address]  # fmt: skip
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                before, peak, held = (r[k] / 2**20 for k in ("before", "peak", "held"))
                first, again = r["seconds"]
                print(f"{n:>7} {way:>7} {first:>5.2f} {again:>5.2f} {before:>11.0f} "
                      f"{peak - before:>7.0f} {held - before:>7.0f} {r['stats_rows']:>11} "
                      f"{r['digest']}")  # fmt: skip
            shutil.rmtree(directory)
        ray.shutdown()


if __name__ == "__main__":
    main()
