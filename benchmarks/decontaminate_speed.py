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
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from common import run_cli  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.sample.compliance import eval_questions  # noqa: E402


def plant(input_dir: Path, items: list[str], share: float, rng: random.Random) -> set[str]:
    """Append an eval item to `share` of the documents; their ids."""
    planted: set[str] = set()
    for path in sorted(input_dir.glob("*.parquet")):
        table = pq.read_table(path)
        texts = table.column("text").to_pylist()
        ids = table.column("id").to_pylist()
        for i in range(len(texts)):
            if rng.random() < share:
                texts[i] = texts[i] + "\n\n" + rng.choice(items)
                planted.add(ids[i])
        table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
        pq.write_table(table, path, row_group_size=500, compression="zstd")
    return planted


def run(input_dir: Path, output: Path, spec: dict, workers: int) -> tuple[float, dict]:
    config = output.parent / f"{output.name}.yaml"
    config.write_text(yaml.safe_dump(spec))
    wall, _ = run_cli(
        "run", "--input", str(input_dir), "--output", str(output), "--config", str(config),
        "--num-cpus", str(workers), "--overwrite", "--quiet",
    )  # fmt: skip
    return wall, json.loads((output / "manifest.json").read_text())


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
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate_sample(root / "in", docs=args.docs, shards=args.shards, seed=0)
        items = eval_questions(args.items, rng)
        planted = plant(root / "in", items, args.share, rng)
        pq.write_table(
            pa.table({"qid": [f"q{i}" for i in range(len(items))], "question": items}),
            root / "eval.parquet",
        )
        print(f"generated {args.docs} documents ({len(planted)} with an eval item) and "
              f"{args.items} eval items in {time.perf_counter() - started:.0f} s")  # fmt: skip
        source = {"name": "eval", "uri": str(root / "eval.parquet"), "fields": ["question"],
                  "id_field": "qid"}  # fmt: skip
        plain: dict = {}  # the default job: langid, quality rules, MinHash
        with_decon = {**plain, "decontaminate": {"enabled": True, "sources": [source]}}
        results = {}
        for name, spec in (("without", plain), ("with", with_decon)):
            results[name] = run(root / "in", root / f"out-{name}", spec, args.workers)
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
