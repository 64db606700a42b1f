"""Throughput of the whole job on N generated documents: per phase and per
stage docs/s and MB/s, per-core figures, peak memory, a scaling table over
1, 2, 4, ... workers up to the cores present, and the speed against a
single-process baseline run on the same data in the same run (fastText
language ID, batched, plus datasketch MinHash-LSH with its bulk generator: the
script a user would write, benchmarks/baselines.py).

    .venv/bin/python benchmarks/throughput.py                 # 200,000 documents
    .venv/bin/python benchmarks/throughput.py --docs 1000000
    .venv/bin/python benchmarks/throughput.py --workers 1,4,16 --baseline-docs 50000
    .venv/bin/python benchmarks/throughput.py --real-mb 100 --workers 2   # real text
    .venv/bin/python benchmarks/throughput.py --real-mb 280 --workers 2 --again --sent

--again also runs the job twice in one driver on the widest worker count: the
second run finds Ray's worker processes started and their models loaded, so
the difference is the job's fixed cost, paid once a job however large.
--sent also sends the job (the CLI, `run --address`) to a Ray that is already
running, one node of the widest worker count's CPUs (cluster/local/start.sh):
the wall time of a job sent to a cluster, which starts its worker processes
but not Ray.

The baseline does less than the job (no quality rules, no staging, no
manifest); its time is measured on --baseline-docs documents (default: all)
and scaled linearly when fewer, which the output says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from baselines import datasketch_dedup, fasttext_languages  # noqa: E402
from common import job_totals_in_one_driver, run_cli, running_local_ray  # noqa: E402
from dedupe_at_scale.config import JobConfig  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from real_text import write_real_corpus  # noqa: E402

MB = 1e6


def worker_counts(cores: int, requested: str | None) -> list[int]:
    if requested:
        return sorted({int(w) for w in requested.split(",")})
    counts, w = [], 1
    while w < cores:
        counts.append(w)
        w *= 2
    return counts + [cores]


def baseline(input_dir: Path, docs: int) -> tuple[float, float, int]:
    """fastText language ID (one batched predict), then the plain datasketch
    MinHashLSH script (bulk MinHash generator, no candidate verification: the
    faster of baselines.py's two), one process, on the first `docs`
    documents: (seconds in all, seconds of fastText's predict, documents)."""
    subset = input_dir.parent / "baseline-input"
    table = pq.read_table(input_dir).slice(0, docs)
    subset.mkdir(exist_ok=True)
    pq.write_table(table, subset / "part-0.parquet")
    min_score = JobConfig().langid.min_score
    started = time.perf_counter()
    _, scores = fasttext_languages(table.column("text").to_pylist())
    kept = [s >= min_score for s in scores]
    langid_seconds = time.perf_counter() - started
    pq.write_table(table.filter(kept), subset / "part-0.parquet")
    dedup_seconds, _ = datasketch_dedup(subset, verify=False)
    return langid_seconds + dedup_seconds, langid_seconds, table.num_rows


def run_job(input_dir: Path, output: Path, workers: int) -> tuple[float, dict, str]:
    wall, sampler = run_cli(
        "run", "--input", str(input_dir), "--output", str(output),
        "--num-cpus", str(workers), "--overwrite", "--quiet",
    )  # fmt: skip
    return wall, json.loads((output / "manifest.json").read_text()), sampler.summary()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shards", type=int, help="input shards (default: 4 per core, >= 16)")
    parser.add_argument(
        "--workers", help="comma-separated worker counts (default: 1, 2, 4, ..., cores)"
    )
    parser.add_argument(
        "--baseline-docs", type=int, help="documents the baseline runs on (default: all)"
    )
    parser.add_argument(
        "--real-mb", type=float, default=0,
        help="run on this many MB of real text (benchmarks/real_text.py) instead of --docs",
    )  # fmt: skip
    parser.add_argument(
        "--again", action="store_true",
        help="also run the job twice in one driver (its fixed cost; the rate once workers are up)",
    )  # fmt: skip
    parser.add_argument(
        "--sent", action="store_true",
        help="also send the job to a running local Ray of the widest worker count's CPUs",
    )  # fmt: skip
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    shards = args.shards or max(16, 4 * cores)

    with tempfile.TemporaryDirectory() as tmp:
        input_dir = Path(tmp) / "in"
        started = time.perf_counter()
        if args.real_mb:  # real text instead (issue 27): long documents, code, tables
            args.docs = write_real_corpus(input_dir, args.real_mb, shards=shards)
            made = "wrote real text:"
        else:
            generate_sample(input_dir, docs=args.docs, shards=shards, seed=11)
            made = "generated"
        text = pq.read_table(input_dir, columns=["text"]).column("text")
        text_mb = pc.sum(pc.binary_length(text)).as_py() / MB
        print(f"{made} {args.docs} documents ({text_mb:.0f} MB of text, {shards} shards) "
              f"in {time.perf_counter() - started:.0f} s; {cores} cores")  # fmt: skip

        runs = {}
        for workers in worker_counts(cores, args.workers):
            runs[workers] = run_job(input_dir, Path(tmp) / "out", workers)
            phases = runs[workers][1]["timings"]["wall_seconds"]
            print(f"  job with {workers} workers: {runs[workers][0]:.1f} s; phases: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()), flush=True)  # fmt: skip
        widest = max(runs)
        again = (
            job_totals_in_one_driver(input_dir, Path(tmp) / "again", widest) if args.again else []
        )
        sent = None
        if args.sent:
            with running_local_ray(widest) as address:
                sent = run_cli("run", "--input", str(input_dir), "--output",
                               str(Path(tmp) / "sent"), "--address", address, "--quiet")[0]  # fmt: skip
        base_seconds, predict_seconds, base_docs = baseline(
            input_dir, args.baseline_docs or args.docs
        )

    wall, manifest, memory = runs[widest]
    print(f"\nWhole job, {widest} workers: {wall:.1f} s = {args.docs / wall:,.0f} docs/s, "
          f"{text_mb / wall:.1f} MB/s ({args.docs / wall / widest:,.0f} docs/s per core; "
          "wall time includes starting Ray)")  # fmt: skip
    print(f"peak memory: {memory}")
    print(f"\n{'phase':10} {'wall s':>8} {'docs/s':>10} {'MB/s':>8}")
    for phase, seconds in manifest["timings"]["wall_seconds"].items():
        if phase == "total":
            continue
        if seconds < 0.1:  # too short for a meaningful rate
            print(f"{phase:10} {seconds:8.1f} {'-':>10} {'-':>8}")
        else:
            print(
                f"{phase:10} {seconds:8.1f} {args.docs / seconds:10,.0f} {text_mb / seconds:8.1f}"
            )
    print(f"\n{'stage':10} {'docs in':>9} {'busy s':>8} {'docs/s/core':>12} {'MB/s/core':>10}")
    busy = manifest["timings"]["stage_busy_seconds"]
    mb_per_core_s = {}  # by stage
    for stage, counts in manifest["counts"]["stages"].items():
        seconds = busy.get({"dedup": "minhash"}.get(stage, stage), 0.0)
        if seconds:
            mb_per_core_s[stage] = text_mb * counts["in"] / args.docs / seconds
            print(f"{stage:10} {counts['in']:9,d} {seconds:8.1f} {counts['in'] / seconds:12,.0f} "
                  f"{mb_per_core_s[stage]:10.2f}")  # fmt: skip
    rated = {({"dedup": "minhash"}.get(s, s)) for s in manifest["counts"]["stages"]}
    others = {k: v for k, v in busy.items() if k not in rated}
    if others:  # stages that reject nothing (tokens, lineage, ...): busy seconds only
        print(
            "other stages, busy s: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(others.items()))
        )
    setup = manifest["timings"].get("stage_setup_seconds", {})
    if setup:
        print(
            "set-up, once per worker process, s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(setup.items()))
        )
    print(
        "(busy seconds are summed over workers, set-up apart; stages run fused in one task, "
        "so each stage's rate is per core; dedup's row is its signature step; MB in a stage "
        "is the run's MB times its share of documents)"
    )

    base = min(runs)
    print(f"\n{'workers':>7} {'wall s':>8} {'docs/s':>10} {'MB/s':>8} "
          f"{f'speed-up vs {base}':>15} {'efficiency':>10}")  # fmt: skip
    one = runs[base]
    for workers, (seconds, _, _) in runs.items():
        speedup = one[0] / seconds  # measured against the fewest workers run
        print(f"{workers:7d} {seconds:8.1f} {args.docs / seconds:10,.0f} {text_mb / seconds:8.1f} "
              f"{speedup:14.2f}x {speedup * base / workers:9.0%}")  # fmt: skip

    scaled = base_seconds * args.docs / base_docs
    note = "" if base_docs == args.docs else f" (measured on {base_docs} documents, scaled)"
    print(f"\nbaseline, 1 process (fastText batched + datasketch generator + MinHashLSH): {scaled:.1f} s = "
          f"{args.docs / scaled:,.0f} docs/s{note}")  # fmt: skip
    print(
        f"job speed / baseline speed: {scaled / wall:.2f}x with {widest} workers, "
        f"{scaled / one[0]:.2f}x with {base} (the job also runs the quality rules, staging "
        "and accounting, which the baseline does not)"
    )
    # Issue 12's yardstick: the whole job per core against fastText alone.
    predict_rate = base_docs / predict_seconds
    job_rate = args.docs / wall / widest
    print(
        f"fastText lid.176 predict alone (batched, 1 process): {predict_rate:,.0f} docs/s; "
        f"whole job per core with {widest} workers: {job_rate:,.0f} docs/s = "
        f"{job_rate / predict_rate:.0%} of it (target >= 40%)"
    )
    # Issue 27's: the whole job per core against the language-ID stage's own
    # rate (its MB are the documents', though it reads only their first
    # characters), with and without Ray's start.
    langid_rate = mb_per_core_s.get("langid")
    if langid_rate:
        total = manifest["timings"]["wall_seconds"]["total"]
        with_start, without = text_mb / wall / widest, text_mb / total / widest
        print(
            f"language-ID stage: {langid_rate:.1f} MB/s per core; whole job per core: "
            f"{with_start:.1f} MB/s = {with_start / langid_rate:.0%} of it, {without:.1f} MB/s = "
            f"{without / langid_rate:.0%} without Ray's start (target >= 25%)"
        )
        if again:
            first, second = again
            rate = text_mb / second / widest
            print(
                f"the same job twice in one driver: {first:.1f} s, then {second:.1f} s with the "
                f"workers up and their models loaded ({first - second:.1f} s of fixed cost a job); "
                f"then {rate:.1f} MB/s per core = {rate / langid_rate:.0%} of the language-ID stage"
            )
        if sent:
            rate = text_mb / sent / widest
            print(
                f"the same job sent to a running Ray of {widest} CPUs: {sent:.1f} s (the command's "
                f"wall time) = {rate:.1f} MB/s per core = {rate / langid_rate:.0%} of the "
                "language-ID stage"
            )


if __name__ == "__main__":
    main()
