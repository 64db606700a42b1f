"""Speed of the quality rules per core: the job's engine
(`QualityFilter.evaluate_batch`: every signal counted by the native kernel in
stages/quality/measure.py over the Arrow buffers) against the pure-Python
reference engine (`QualityFilter.evaluate`, one document at a time), on the
same documents, in one run; the two must give the same verdicts, values and
signals, which this checks too. Issue 12's target is >= 25 MB/s per core and
>= 10x the reference.

  english       the built-in sample's English documents
  multilingual  the whole built-in sample (en, de, fr, es, zh, ja, ...)
  translations  gettext catalogs installed on this machine (real text in
                about 70 languages; see langid_prefix.py)
  real          real text (benchmarks/real_text.py: man pages, catalogs,
                /usr/share/doc, Python's docs and sources; --real-mb),
                labelled by the bundled language ID as the job does

    .venv/bin/python benchmarks/quality_speed.py
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from dedupe_at_scale.config import JobConfig
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.langid import LanguageIdentifier
from dedupe_at_scale.stages.quality import QualityFilter
from langid_prefix import catalog_documents
from real_text import real_texts

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
    parser.add_argument("--real-mb", type=float, default=25, help="MB of real text (0: skip)")
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
    if args.real_mb > 0:  # long documents, code, tables; labelled as the job would (issue 27)
        real = real_texts(args.real_mb)
        labels, _ = LanguageIdentifier().predict(real)
        collections["real"] = list(zip(real, labels))
    engine = QualityFilter(JobConfig().quality)
    engine.evaluate_batch(["warm up the kernel " * 20], ["en"])  # numba compiles once

    print(f"{'collection':13} {'docs':>7} {'MB':>6} {'reference MB/s':>15} "
          f"{'kernel MB/s':>12} {'speed-up':>9} {'Σ or İ':>7}")  # fmt: skip
    for name, docs in collections.items():
        texts = pa.array([t for t, _ in docs], pa.string())  # the job hands Arrow arrays
        languages = pa.array([lang for _, lang in docs], pa.string())
        mb = sum(len(t.encode()) for t, _ in docs) / 1e6
        ref_s, ref = timed(lambda: [engine.evaluate(t, lang) for t, lang in docs])  # noqa: B023
        new_s, new = timed(lambda: engine.evaluate_batch(texts, languages))  # noqa: B023
        same = all(
            (a.rule, a.value, a.signals) == (b.rule, b.value, b.signals)
            for a, b in zip(ref, map(new.verdict, range(len(docs))))
        )
        assert same, f"{name}: the engines disagree"
        # Documents whose words the kernel lowers one by one (see measure.py).
        contextual = sum(1 for t, _ in docs if "\u03a3" in t or "\u0130" in t)
        print(f"{name:13} {len(docs):7,d} {mb:6.1f} {mb / ref_s:15.2f} {mb / new_s:12.2f} "
              f"{ref_s / new_s:8.2f}x {contextual:7,d}")  # fmt: skip
    print(
        f"(one core; verdicts, values and signals identical; target >= {TARGET_MB_S:g} MB/s "
        f"and >= {TARGET_RATIO:g}x; 'Σ or İ': documents holding a capital sigma or U+0130, "
        "whose lower-casing depends on the neighbours or adds a character)"
    )


if __name__ == "__main__":
    main()
