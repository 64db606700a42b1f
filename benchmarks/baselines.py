"""The single-process scripts the benchmarks compare against, written the way
a competent user of each library writes them: datasketch's documented bulk
path (`MinHash.generator`, one initialised permutation state copied per
document) and fastText's batched `predict` (one call for a list of texts).

Both dedup scripts use the job's normalization and word 5-gram shingles, so
the comparison is about how duplicates are found, not what counts as a word.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH

from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.stages.langid import bundled_lid_model_path, load_fasttext_model
from dedupe_at_scale.stages.minhash import choose_bands, normalize

THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5


def shingle_sets(texts: Iterable[str], n: int = NGRAM) -> Iterator[list[bytes]]:
    """Word n-gram shingles of already-normalized texts, as datasketch takes them."""
    for text in texts:
        words = text.split()
        grams = {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)} or {" ".join(words)}
        yield [g.encode("utf-8") for g in grams]


def datasketch_minhashes(texts: pa.Array) -> Iterator[MinHash]:
    """One MinHash per text through datasketch's bulk generator."""
    normalized = normalize(texts).to_pylist()
    return MinHash.generator(shingle_sets(normalized), num_perm=NUM_PERM)


def datasketch_s_curve() -> str:
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    return f"{lsh.b} bands x {lsh.r} rows (datasketch's choice for threshold {THRESHOLD})"


def job_s_curve() -> str:
    cfg = JobConfig().dedup
    bands, rows = choose_bands(cfg.threshold, cfg.num_perm, cfg.band_selection)
    return f"{bands} bands x {rows} rows (band_selection: {cfg.band_selection})"


def datasketch_dedup(input_dir: Path, verify: bool) -> tuple[float, dict]:
    """The script a user writes: one process, MinHashLSH query-then-insert,
    union-find over the hits, smallest id kept per cluster. With `verify`, a
    hit joins a cluster only if `MinHash.jaccard` of the two signatures is at
    least the threshold (the usual fix for LSH's false candidates).
    Returns (seconds, {"clusters": id -> root, "kept": ids})."""
    started = time.perf_counter()
    table = pq.read_table(input_dir)
    ids = table.column("id").to_pylist()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    signatures: dict[str, MinHash] = {}
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for doc_id, m in zip(ids, datasketch_minhashes(table.column("text"))):
        for other in lsh.query(m):
            if verify and m.jaccard(signatures[other]) < THRESHOLD:
                continue
            a, b = find(doc_id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(doc_id, m)
        if verify:
            signatures[doc_id] = m
    clusters = {x: find(x) for x in list(parent)}
    clusters.update({root: root for root in set(clusters.values())})
    kept = {d for d in ids if d not in clusters or clusters[d] == d}
    return time.perf_counter() - started, {"clusters": clusters, "kept": kept}


def fasttext_languages(texts: list[str]) -> tuple[list[str], list[float]]:
    """fastText lid.176 on a list of texts in one batched `predict` call
    (fastText wants one line per text)."""
    model = load_fasttext_model(str(bundled_lid_model_path()))
    labels, scores = model.predict([t.replace("\n", " ") for t in texts], k=1)
    return [label[0].removeprefix("__label__") for label in labels], [s[0] for s in scores]
