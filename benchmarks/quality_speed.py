"""Speed of the quality rules per core: the job's batch engine
(`QualityFilter.evaluate_batch`, batch-measured signals) against the
document-at-a-time reference engine (`QualityFilter.evaluate`), on the same
documents, in one run; the two must give the same verdicts, which this checks
too. Issue 12's target is >= 25 MB/s per core and >= 10x the reference.

  english       the built-in sample's English documents
  multilingual  the whole built-in sample (en, de, fr, es, zh, ja, ...)
  translations  gettext catalogs installed on this machine (real text in
                about 70 languages; see langid_prefix.py)

    .venv/bin/python benchmarks/quality_speed.py
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pyarrow.parquet as pq

from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.quality import QualityFilter
from langid_prefix import catalog_documents

TARGET_MB_S, TARGET_RATIO = 25.0, 10.0


def timed(fn, repeats: int = 2):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(tmp, docs=args.docs, shards=2, seed=6)
        table = pq.read_table(tmp, columns=["text", "language_planted"])
    sample = list(
        zip(table.column("text").to_pylist(), table.column("language_planted").to_pylist())
    )
    collections = {
        "english": [(t, lang) for t, lang in sample if lang == "en"],
        "multilingual": sample,
        "translations": [(t, lang) for lang, t in catalog_documents(5, 2_000, seed=1)],
    }
    engine = QualityFilter(JobConfig().quality)
    engine.evaluate_batch(["warm up the kernel " * 20], ["en"])  # numba compiles once

    print(f"{'collection':13} {'docs':>7} {'MB':>6} {'reference MB/s':>15} "
          f"{'batch MB/s':>11} {'speed-up':>9}")  # fmt: skip
    for name, docs in collections.items():
        texts = [t for t, _ in docs]
        languages = [lang for _, lang in docs]
        mb = sum(len(t.encode()) for t in texts) / 1e6
        ref_s, ref = timed(lambda: [engine.evaluate(t, lang) for t, lang in docs])  # noqa: B023
        new_s, new = timed(lambda: engine.evaluate_batch(texts, languages))  # noqa: B023
        same = all(
            (a.rule, a.value, a.signals) == (b.rule, b.value, b.signals) for a, b in zip(ref, new)
        )
        assert same, f"{name}: the engines disagree"
        print(f"{name:13} {len(docs):7,d} {mb:6.1f} {mb / ref_s:15.2f} {mb / new_s:11.2f} "
              f"{ref_s / new_s:8.2f}x")  # fmt: skip
    print(
        f"(one core; verdicts, values and signals identical; target >= {TARGET_MB_S:g} MB/s "
        f"and >= {TARGET_RATIO:g}x)"
    )


if __name__ == "__main__":
    main()
