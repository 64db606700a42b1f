"""The whole job (language ID, quality rules, global dedup) on large generated
corpora on this machine, one run per size: wall time per phase, docs/s per
stage, and per phase the peak memory of the driver and of Ray's workers and
the peak bytes spilled from the object store. With several sizes it prints
the sweep: seconds per million documents against the smallest size (linear
time keeps the ratio near 1) and the driver's peak (flat is the goal).

    .venv/bin/python benchmarks/job_scale.py --docs 1000000
    .venv/bin/python benchmarks/job_scale.py --docs 1000000,2000000,5000000
    .venv/bin/python benchmarks/job_scale.py --generator streaming --docs 1000000,5000000,20000000
    .venv/bin/python benchmarks/job_scale.py --generator streaming --rows-per-task 1000  # 1,000 staged files

The default generator is the built-in sample's, whose documents share a small
bank of sentence parts, so dedup's candidate pairs per document grow with the
corpus; `--generator streaming` (dedupe_at_scale.sample.streaming) keeps them
flat, as a real corpus's near-duplicates are, and writes any size in bounded
memory.

Phase windows are counted back from the manifest's finished_at (1 s
resolution): the global steps, write and account follow each other, and
Ray's start-up falls before annotate, in "plan".
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import MemorySampler, run_cli  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.sample.streaming import generate_streaming  # noqa: E402

MiB = 2**20


def phase_windows(manifest: dict) -> dict[str, tuple[float, float]]:
    """(start, end) in Unix time of each phase after planning, from the end back."""
    wall = dict(manifest["timings"]["wall_seconds"])
    finished = calendar.timegm(time.strptime(manifest["finished_at"], "%Y-%m-%dT%H:%M:%SZ"))
    end, windows = finished + 1.0, {}
    for phase in reversed([p for p in wall if p not in ("plan", "prepare", "total")]):
        windows[phase] = (end - wall[phase] - 1.0, end)
        end -= wall[phase]
    windows["plan"] = (0.0, end)
    return dict(reversed(windows.items()))


def run_size(
    docs: int, shards: int, root: Path, generator: str, rows_per_task: int | None = None
) -> tuple[float, dict, MemorySampler]:
    input_dir, output = root / "in", root / "out"
    config = root / "job.yaml"  # read units of rows_per_task rows: that many staged files
    settings = {"input": {"rows_per_task": rows_per_task}} if rows_per_task else {}
    config.write_text(json.dumps(settings))
    started = time.perf_counter()
    if generator == "streaming":
        generate_streaming(input_dir, docs, shards, seed=5, processes=os.cpu_count() or 1)
    else:
        generate_sample(input_dir, docs=docs, shards=shards, seed=5)
    print(f"generated {docs} documents in {time.perf_counter() - started:.0f} s")
    paths = ["--input", str(input_dir), "--output", str(output), "--config", str(config)]
    wall, sampler = run_cli("run", *paths, "--quiet")
    manifest = json.loads((output / "manifest.json").read_text())
    shutil.rmtree(input_dir)
    shutil.rmtree(output)
    return wall, manifest, sampler


def print_run(docs: int, wall: float, manifest: dict, sampler: MemorySampler) -> None:
    counts, timings = manifest["counts"], manifest["timings"]
    print(f"{docs} documents, {os.cpu_count()} cores: whole job {wall:.0f} s "
          f"({docs / wall:.0f} docs/s, including Ray start-up)")  # fmt: skip
    print(f"{'phase':10} {'wall s':>8} {'driver MiB':>10} {'workers MiB':>11} {'spilled MiB':>11}")
    wall_seconds = timings["wall_seconds"]
    for phase, (start, end) in phase_windows(manifest).items():
        driver, workers, spilled = sampler.peaks_between(start, end)
        print(f"{phase:10} {wall_seconds.get(phase, 0):8.1f} {driver / MiB:10.0f} "
              f"{workers / MiB:11.0f} {spilled / MiB:11.0f}")  # fmt: skip
    print(f"{'stage':13} {'in':>9} {'kept':>9} {'busy s':>8} {'docs/s/core':>12}")
    busy = timings["stage_busy_seconds"]
    for stage, c in counts["stages"].items():
        seconds = busy.get({"dedup": "minhash"}.get(stage, stage), 0.0)
        rate = f"{c['in'] / seconds:12.0f}" if seconds else f"{'':>12}"
        print(f"{stage:13} {c['in']:9d} {c['kept']:9d} {seconds:8.1f} {rate}")
    d = manifest["dedup"]
    print(f"dedup: {d['exact_duplicates_removed']} exact + {d['near_duplicates_removed']} near removed, "
          f"{d['clusters']} clusters, {d['partitions']} partitions, exchange {d['exchange']}; "
          f"global steps {d['seconds']}")  # fmt: skip
    # What verify's work and its hop's bytes grow with (per input document).
    n = manifest["counts"]["input"]
    print(f"dedup verify: {d['candidate_pairs']} candidate pairs ({d['candidate_pairs'] / n:.2f} "
          f"a document), {d['signatures_sent']} signatures sent "
          f"({d['signatures_sent'] / n:.2f} a document), {d['near_edges']} near edges kept")  # fmt: skip
    print(f"peak memory: {sampler.summary()}")
    print("(busy seconds are summed over workers; dedup's row is its signature step)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", default="1000000", help="comma-separated sizes")
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--generator", choices=["sample", "streaming"], default="sample")
    parser.add_argument("--rows-per-task", type=int, help="input.rows_per_task (20,000 by default)")
    args = parser.parse_args()
    sizes = [int(d) for d in args.docs.split(",")]
    rows = []
    for docs in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            wall, manifest, sampler = run_size(
                docs, args.shards, Path(tmp), args.generator, args.rows_per_task
            )
        print_run(docs, wall, manifest, sampler)
        rows.append((docs, wall, manifest["timings"]["wall_seconds"]["total"], sampler))
    if len(rows) > 1:
        first_rate = rows[0][2] / rows[0][0]
        print(f"\n{'documents':>10} {'job s':>8} {'s per 1M':>9} {'vs first':>8} "
              f"{'driver MiB':>10} {'workers MiB':>11}")  # fmt: skip
        for docs, _wall, total, sampler in rows:
            rate = total / docs
            print(f"{docs:>10} {total:8.0f} {1e6 * rate:9.1f} {rate / first_rate:8.2f} "
                  f"{sampler.driver_peak / MiB:10.0f} {sampler.workers_peak / MiB:11.0f}")  # fmt: skip
        print("(job s: the manifest's total, without Ray start-up)")


if __name__ == "__main__":
    main()
