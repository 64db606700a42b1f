"""The PII engine against a straightforward implementation, one core: each
detector's regular expression run over every document with Python's `re`
(then the same checks and overlap rule; detectors.find_pii, the reference),
against one Hyperscan pass over the batch that sends only documents with a
candidate to the reference (engine.py). Four corpora, every row printed:

  sample          the built-in generator: no document holds a candidate, so
                  the fast path never calls the reference (the best case)
  sample + 10%    the same with PII planted in 10% of the documents
  real            real text (benchmarks/real_text.py: man pages, gettext
                  catalogs, /usr/share/doc, Python's docs and sources), where
                  e-mail addresses, URLs, version numbers and dates fire the
                  candidates as they do on the web
  real + 2%       the same with PII planted in 2% of the documents

Both must find the same matches; the output says so. docs/performance.md quotes the
slowest row.

    .venv/bin/python benchmarks/pii_speed.py            # 20,000 documents, 50 MB real
    .venv/bin/python benchmarks/pii_speed.py --docs 100000 --real-mb 100

Target (issue 15): >= 30 MB/s per core.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))

from dedupe_at_scale.config import config_from_dict  # noqa: E402
from dedupe_at_scale.sample import generate_sample  # noqa: E402
from dedupe_at_scale.stages.pii.detectors import find_pii  # noqa: E402
from dedupe_at_scale.stages.pii.engine import Engine  # noqa: E402
from real_text import real_texts  # noqa: E402

PLANTS = [
    "Write to {name}.{n}@mail-{n}.de for details.",
    "Call +49 30 {n}{n}{n}7 or (415) 555-{n:04d}.",
    "The admin panel is at 10.{n}.3.{n}.",
    "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.",
    "key AKIAIOSFODNN7EXAMPLE was leaked",
    "Server 2a00:1450:4001:82a::{n:x} is down.",
]
BATCH = 2_000  # documents per engine call, as in an annotation task


def planted(texts: list[str], share: float, rng: random.Random) -> list[str]:
    out = []
    for text in texts:
        if rng.random() < share:
            plant = rng.choice(PLANTS).format(name="anna", n=rng.randint(10, 99))
            text = text + "\n" + plant
        out.append(text)
    return out


def measure(title: str, texts: list[str]) -> None:
    cfg = config_from_dict({"pii": {"enabled": True}}).pii
    mb = sum(len(t.encode()) for t in texts) / 1e6
    engine = Engine(cfg)
    arrays = [pa.array(texts[i : i + BATCH], pa.string()) for i in range(0, len(texts), BATCH)]
    started = time.perf_counter()
    fast = {}
    for b, array in enumerate(arrays):
        for row, found in engine.find(array, range(len(array))).items():
            fast[b * BATCH + row] = found
    engine_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = {i: f for i, t in enumerate(texts) if (f := find_pii(t, cfg))}
    reference_s = time.perf_counter() - started
    print(
        f"{title}: {len(texts):,} documents, {mb:.1f} MB, one core\n"
        f"  per-detector re : {reference_s:7.2f} s {mb / reference_s:8.2f} MB/s\n"
        f"  engine          : {engine_s:7.2f} s {mb / engine_s:8.2f} MB/s   "
        f"{reference_s / engine_s:.1f}x; documents with PII {len(fast)}; "
        f"same matches: {fast == reference}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--real-mb", type=float, default=50, help="MB of real text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(Path(tmp), docs=args.docs, shards=4, seed=0)
        texts = pq.read_table(tmp).column("text").to_pylist()
    real = real_texts(args.real_mb)
    measure("sample", texts)
    measure("sample + PII in 10%", planted(texts, 0.10, random.Random(1)))
    measure("real text", real)
    measure("real text + PII in 2%", planted(real, 0.02, random.Random(1)))


if __name__ == "__main__":
    main()
