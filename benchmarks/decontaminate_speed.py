"""What decontamination adds to the annotation phase: the built-in sample
with eval items planted into 1% of its documents, run twice on the same
workers, without and with decontamination against an eval set of
--items questions (words of a made-up vocabulary, so that only the planted
ones match). Prints the annotation busy seconds of both runs, the share
decontamination adds, the index's size (what each worker maps from Ray's
object store) and the planted documents found.

    .venv/bin/python benchmarks/decontaminate_speed.py                      # 200,000 documents
    .venv/bin/python benchmarks/decontaminate_speed.py --docs 1000000 --items 100000

Target (issue 15): <= 15% added to the annotation phase's busy time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from common import run_job  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.sample.compliance import plant  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.01, help="documents given an eval item")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate_sample(root / "in", docs=args.docs, shards=args.shards, seed=0)
        # The sample's eval set and planting (generate --evals), PII left out.
        plant(root / "in", root, items=args.items, eval_share=args.share, pii_share=0.0)
        truth = pq.read_table(root / "in", columns=["id", "gt_eval_item"]).to_pylist()
        planted = {r["id"] for r in truth if r["gt_eval_item"] is not None}
        print(f"generated {args.docs} documents ({len(planted)} with an eval item) and "
              f"{args.items} eval items in {time.perf_counter() - started:.0f} s")  # fmt: skip
        source = {"name": "quiz", "uri": str(root / "quiz.parquet"), "fields": ["question"],
                  "id_field": "id"}  # fmt: skip
        plain: dict = {}  # the default job: langid, quality rules, MinHash
        with_decon = {**plain, "decontaminate": {"enabled": True, "sources": [source]}}
        results = {}
        for name, spec in (("without", plain), ("with", with_decon)):
            results[name] = run_job(root / "in", root / f"out-{name}", args.workers, spec)
        hits = set(pq.read_table(root / "out-with" / "contamination").column("id").to_pylist())
        earlier = pq.read_table(root / "out-with" / "rejected", columns=["id", "stage"]).to_pylist()
        reached = planted - {r["id"] for r in earlier if r["stage"] != "decontaminate"}

    print(f"{'run':<8} {'wall s':>7} {'annotate s':>10} {'busy s':>8}  busy seconds by stage")
    busy = {}
    for name, (wall, manifest) in results.items():
        stages = manifest["timings"]["stage_busy_seconds"]
        busy[name] = sum(stages.values())
        annotate = manifest["timings"]["wall_seconds"]["annotate"]
        shown = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        print(f"{name:<8} {wall:>7.1f} {annotate:>10.1f} {busy[name]:>8.1f}  {shown}")
    manifest = results["with"][1]
    section = manifest["decontaminate"]
    added = manifest["timings"]["stage_busy_seconds"]["decontaminate"]
    print(
        f"decontamination adds {added:.1f} busy s to {busy['without']:.1f}: "
        f"{100 * added / busy['without']:.1f}% (target <= 15%)"
    )
    print(
        f"index: {section['ngrams']} {section['ngram_size']}-grams of {args.items} items, "
        f"{section['index_bytes'] / 2**20:.1f} MiB per worker (shared, zero-copy), built in "
        f"{manifest['timings']['wall_seconds'].get('prepare', 0):.1f} s on the driver"
    )
    print(
        f"planted documents that reached the stage: {len(reached)}; found {len(hits & reached)}; "
        f"other documents hit: {len(hits - planted)}"
    )


if __name__ == "__main__":
    main()
