"""Near-duplicate quality and speed of the dedup-only job against two
single-process datasketch MinHashLSH scripts (baselines.py), in one run:
the plain script (every LSH hit joins a cluster) and the same script with
candidate verification (a hit joins only if MinHash.jaccard >= threshold).

Corpus: documentation-like pages (a handful of shared header/footer templates
around bodies of very different lengths, so short pages look alike), plus
planted copies of some pages edited down to known Jaccard levels, including
just above and just below the threshold (exact Jaccard of word 5-gram sets).

Prints, for each method, with the S-curve (bands x rows) each uses:
  recall          planted pairs with true Jaccard >= threshold + 0.05 that end
                  in one cluster
  false removals  removed documents whose best true Jaccard to any kept document
                  is below threshold - 0.1, as a share of removed documents
  wall time, and for the job the peak memory of the driver and of Ray's workers

    .venv/bin/python benchmarks/dedup_quality.py --docs 50000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from baselines import THRESHOLD, datasketch_dedup, datasketch_s_curve, job_s_curve
from common import MemorySampler, run_cli
from dedupe_at_scale.sample import bank, clean_document
from dedupe_at_scale.stages.minhash import normalize

LEVELS = [0.70, 0.75, 0.78, 0.82, 0.85, 0.88, 0.92, 0.96]
TEMPLATES = 20


def grams(text: str) -> set[int]:
    words = normalize(pa.array([text])).to_pylist()[0].split()
    return {hash(tuple(words[i : i + 5])) for i in range(len(words) - 4)} or {hash(tuple(words))}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def make_corpus(docs: int, seed: int) -> tuple[list[dict], list[tuple[str, str, float]]]:
    rng = random.Random(seed)
    headers = [
        clean_document(rng, "en", sentences=3).replace("\n\n", " ") for _ in range(TEMPLATES)
    ]
    footers = [
        clean_document(rng, "en", sentences=2).replace("\n\n", " ") for _ in range(TEMPLATES)
    ]
    planted = int(docs * 0.08)
    rows = []
    for i in range(docs - planted):
        t = rng.randrange(TEMPLATES)
        body = clean_document(
            rng, rng.choice(["en", "de", "fr", "es"]), sentences=rng.choice([3, 4, 6, 9, 12])
        )
        rows.append({"id": f"doc{i:08d}", "text": f"{headers[t]}\n\n{body}\n\n{footers[t]}"})
    pairs = []
    for k in range(planted):
        original = rows[rng.randrange(len(rows))]
        target = LEVELS[k % len(LEVELS)]
        text, true_j = edit_to_jaccard(rng, original["text"], target)
        copy_id = f"doc{docs - planted + k:08d}"  # copies come later, as in a crawl
        rows.append({"id": copy_id, "text": text})
        pairs.append((copy_id, original["id"], true_j))
    rng.shuffle(rows)
    return rows, pairs


def edit_to_jaccard(rng: random.Random, text: str, target: float) -> tuple[str, float]:
    """Replace words at random positions until the shingle Jaccard drops to
    the target (the last value at or above it is returned)."""
    original = grams(text)
    words = text.split(" ")
    best, best_j = text, 1.0
    while True:
        i = rng.randrange(len(words))
        if "\n" in words[i]:
            continue
        words[i] = rng.choice(bank.NAMES) + str(rng.randrange(1000))
        candidate = " ".join(words)
        j = jaccard(original, grams(candidate))
        if j < target:
            return best, best_j
        best, best_j = candidate, j


def run_job(input_dir: Path, output: Path, *more: str) -> tuple[float, dict, MemorySampler]:
    """The dedup-only job through the CLI (`more`: e.g. --address of a running Ray)."""
    config = output.parent / "dedup_only.yaml"
    config.write_text(json.dumps({"langid": {"enabled": False}, "quality": {"enabled": False}}))
    wall, sampler = run_cli(
        "run",
        "--input",
        str(input_dir),
        "--output",
        str(output),
        "--config",
        str(config),
        "--quiet",
        *more,
    )
    clusters: dict[str, str] = {}
    for row in pq.read_table(output / "duplicates").to_pylist():
        clusters[row["id"]] = row["cluster_id"]
    kept = set(pq.read_table(output / "data", columns=["id"]).column("id").to_pylist())
    return wall, {"clusters": clusters, "kept": kept}, sampler


def score(
    result: dict, rows: list[dict], pairs: list[tuple[str, str, float]]
) -> tuple[float, float, int]:
    clusters, kept = result["clusters"], result["kept"]
    high = [(a, b) for a, b, j in pairs if j >= THRESHOLD + 0.05]
    found = sum(1 for a, b in high if a in clusters and clusters.get(a) == clusters.get(b))
    shingles = {r["id"]: grams(r["text"]) for r in rows}
    partner = {a: b for a, b, _ in pairs} | {b: a for a, b, _ in pairs}
    members = defaultdict(list)
    for doc, cluster in clusters.items():
        members[cluster].append(doc)
    removed = [d for d in clusters if d not in kept]
    false = 0
    for doc in removed:
        # Best match among kept documents of its cluster and its planted partner.
        candidates = [m for m in members[clusters[doc]] if m in kept]
        if partner.get(doc) in kept:
            candidates.append(partner[doc])
        best = max((jaccard(shingles[doc], shingles[c]) for c in candidates), default=0.0)
        false += best < THRESHOLD - 0.1
    return found / max(len(high), 1), false / max(len(removed), 1), len(removed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    rows, pairs = make_corpus(args.docs, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        input_dir = Path(tmp) / "in"
        input_dir.mkdir()
        step = -(-len(rows) // args.shards)
        for s in range(args.shards):
            part = rows[s * step : (s + 1) * step]
            pq.write_table(pa.Table.from_pylist(part), input_dir / f"part-{s:04d}.parquet")
        job_wall, job, sampler = run_job(input_dir, Path(tmp) / "out")
        plain_wall, plain = datasketch_dedup(input_dir, verify=False)
        verified_wall, verified = datasketch_dedup(input_dir, verify=True)

    high = sum(1 for *_, j in pairs if j >= THRESHOLD + 0.05)
    print(f"{len(rows)} documents, {len(pairs)} planted pairs ({high} with Jaccard >= {THRESHOLD + 0.05:.2f}), "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'method':44} {'recall':>7} {'false removals':>15} {'removed':>8} {'wall s':>7}")
    for name, wall, result in [
        ("dedupe-at-scale job (verified LSH)", job_wall, job),
        ("datasketch MinHashLSH, 1 process, plain", plain_wall, plain),
        ("datasketch MinHashLSH, 1 process, verified", verified_wall, verified),
    ]:
        recall, false, removed = score(result, rows, pairs)
        print(f"{name:44} {recall:7.4f} {false:14.2%} {removed:8d} {wall:7.1f}")
    print(f"S-curves: job {job_s_curve()}; both scripts {datasketch_s_curve()}")
    print(f"job speed-up: {plain_wall / job_wall:.1f}x over the plain script, "
          f"{verified_wall / job_wall:.1f}x over the verified one")  # fmt: skip
    print(f"job peak memory: {sampler.summary()}")


if __name__ == "__main__":
    main()
