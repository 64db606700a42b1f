"""Signature speed per core: this project's MinHash step against datasketch.

Both sides get the same normalized text (lower case, punctuation removed), the
same word 5-gram shingles and 128 permutations, on one core, in the same run,
and both are timed the same way: the best of --repeats runs (after one
warm-up for the JIT):

  ours        one numba kernel over the raw texts' Arrow buffers (the stage's
              path: it lower-cases and drops punctuation as it shingles)
  two passes  the reference: normalize (pyarrow) + the kernel over its copy
  datasketch  the same normalization, shingles built in Python, MinHash.generator
              (datasketch's bulk path: one permutation state, copied per document)

Two corpora: the generator's documents, and real text
(benchmarks/real_text.py: man pages, gettext catalogs, /usr/share/doc,
Python's docs and sources; long documents, many scripts, code).

    .venv/bin/python benchmarks/minhash_speed.py --docs 20000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from baselines import NGRAM, NUM_PERM, datasketch_minhashes  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.stages.minhash import (  # noqa: E402
    MinHashParams,
    normalize,
    signatures,
    text_signatures,
)
from real_text import real_texts  # noqa: E402


def ours(texts: pa.Array, params: MinHashParams) -> float:
    """The stage's path: one kernel over the raw texts."""
    started = time.perf_counter()
    text_signatures(texts, np.zeros(len(texts), dtype=bool), params)
    return time.perf_counter() - started


def two_passes(texts: pa.Array, params: MinHashParams) -> float:
    """The reference: Arrow's normalize(), then the kernel over its copy."""
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
    parser.add_argument("--repeats", type=int, default=3, help="each side: the best of this many")
    parser.add_argument("--real-mb", type=float, default=25, help="MB of real text (0: skip)")
    args = parser.parse_args()
    params = MinHashParams()
    assert (params.num_perm, params.ngram_size) == (NUM_PERM, NGRAM)
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(tmp, docs=args.docs, shards=4, seed=2)
        texts = pq.read_table(tmp, columns=["text"]).column("text").combine_chunks()
    for run in (ours, two_passes):  # JIT warm-up (cached on disk after the first run)
        run(texts.slice(0, 100), params)
    compare("generated", texts, params, args)
    if args.real_mb:
        real = pa.array(real_texts(args.real_mb), pa.string())
        # datasketch on the same share of the real documents as of the generated ones
        share = args.baseline_docs / max(1, len(texts))
        compare("real text", real, params, args, max(1, int(len(real) * share)))


def compare(
    title: str, texts: pa.Array, params: MinHashParams, args: argparse.Namespace,
    baseline_docs: int | None = None,
) -> None:  # fmt: skip
    mb = texts.nbytes / 1e6
    best = min(ours(texts, params) for _ in range(args.repeats))
    reference = min(two_passes(texts, params) for _ in range(args.repeats))
    limit = baseline_docs or args.baseline_docs
    ds_seconds, ds_docs = min(datasketch(texts, limit) for _ in range(args.repeats))
    ds_mb = texts.slice(0, ds_docs).nbytes / 1e6
    rows = [
        ("ours (numba, 1 core)", len(texts) / best, mb / best),
        ("ours, two passes (reference)", len(texts) / reference, mb / reference),
        ("datasketch generator (1 core)", ds_docs / ds_seconds, ds_mb / ds_seconds),
    ]
    print(
        f"{title}: {len(texts)} documents, {mb:.1f} MB, {params.num_perm} permutations, word "
        f"{params.ngram_size}-grams; each side the best of {args.repeats} runs "
        f"(datasketch on the first {ds_docs} documents)"
    )
    print(f"{'':32} {'docs/s':>10} {'MB/s':>8}")
    for name, docs_s, mb_s in rows:
        print(f"{name:32} {docs_s:10.0f} {mb_s:8.2f}")
    print(
        f"speed-up per core: {rows[0][1] / rows[2][1]:.1f}x (docs/s), {rows[0][2] / rows[2][2]:.1f}x "
        f"(MB/s) over datasketch; {reference / best:.2f}x over the two passes"
    )


if __name__ == "__main__":
    main()
