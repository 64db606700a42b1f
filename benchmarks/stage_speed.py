"""Speed of the streaming stages (language ID + quality rules), in one run:

  baseline   the straightforward single-process script: pyarrow read, fastText
             lid.176 batched per file, the same rules in a Python loop, no Ray
  job        `dedupe-at-scale run` on a local Ray, with 1 CPU and with every core

Prints docs/s and MB/s for each, per-stage busy seconds from the job's manifest,
and the job's speed as a ratio to the baseline measured in the same run. The job
runs with its defaults, so it also signs and deduplicates; the baseline does not.

    .venv/bin/python benchmarks/stage_speed.py --docs 50000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from baselines import fasttext_languages
from common import run_job
from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.quality import QualityFilter


def baseline(input_dir: Path) -> float:
    """The script a user would write: one process, fastText's predict batched
    per file, then the rules document by document (they have no batch API)."""
    cfg = JobConfig()
    quality = QualityFilter(cfg.quality)
    started = time.perf_counter()
    kept = 0
    for path in sorted(input_dir.glob("*.parquet")):
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        for text, language, score in zip(texts, *fasttext_languages(texts)):
            if score >= cfg.langid.min_score and quality.evaluate(text, language).kept:
                kept += 1
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        input_dir = Path(tmp) / "in"
        generate_sample(input_dir, docs=args.docs, shards=args.shards, seed=1)
        text_mb = (
            sum(
                pq.read_table(p, columns=["text"]).column("text").nbytes
                for p in input_dir.glob("*.parquet")
            )
            / 1e6
        )
        cores = os.cpu_count() or 1
        print(f"{args.docs} documents, {text_mb:.1f} MB of text, {cores} cores")
        base = baseline(input_dir)
        rows = [("baseline (1 process, no Ray)", base, None)]
        for cpus in sorted({1, cores}):
            wall, manifest = run_job(input_dir, Path(tmp) / f"out{cpus}", cpus)
            rows.append((f"job, local Ray, {cpus} CPU", wall, manifest))

    print(f"\n{'run':32} {'wall s':>8} {'docs/s':>9} {'MB/s':>7} {'vs baseline':>12}")
    for name, wall, _ in rows:
        print(
            f"{name:32} {wall:8.1f} {args.docs / wall:9.0f} {text_mb / wall:7.2f} {base / wall:11.2f}x"
        )
    print("\nper-stage busy seconds (summed over workers) and docs/s per busy core:")
    for name, _, manifest in rows[1:]:
        busy = manifest["timings"]["stage_busy_seconds"]
        parts = [
            f"{stage} {sec:.1f}s ({args.docs / sec:.0f} docs/s)"
            for stage, sec in busy.items()
            if sec
        ]
        print(f"  {name}: " + ", ".join(parts))
    print("\nJob wall time includes Ray start-up and staging writes; see docs/performance.md.")


if __name__ == "__main__":
    main()
