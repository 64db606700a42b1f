"""What the boilerplate step would cut from real text at each min_documents
(the single-process reference, steps/boilerplate/units.reference): distinct
boilerplate lines, lines and bytes cut, documents changed, and the most
frequent lines, on the real-text corpus (benchmarks/real_text.py: manual
pages, gettext catalogs, /usr/share/doc, Python's docs and sources), and
the reference's speed. docs/boilerplate.md quotes it for the default.

    .venv/bin/python benchmarks/boilerplate_lines.py            # 20 MB
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from dedupe_at_scale.steps.boilerplate.units import normalized_units, reference  # noqa: E402
from real_text import real_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real-mb", type=float, default=20)
    parser.add_argument("--thresholds", default="3,5,10,20,50")
    args = parser.parse_args()
    texts = real_texts(args.real_mb)
    size = sum(len(t.encode()) for t in texts)
    lines = sum(t.count("\n") + 1 for t in texts)
    print(f"{len(texts):,} real documents, {size / 1e6:.1f} MB, {lines:,} lines")
    print("min_documents  boilerplate lines  lines cut  bytes cut  documents changed  seconds")
    for threshold in (int(x) for x in args.thresholds.split(",")):
        started = time.perf_counter()
        cleaned, lost = reference(texts, "line", threshold, keep_first=False)
        seconds = time.perf_counter() - started
        cut_bytes = size - sum(len(t.encode()) for t in cleaned)
        changed = sum(1 for n in lost if n)
        distinct = _distinct(texts, threshold)
        print(f"{threshold:>13}  {len(distinct):>17,}  {sum(lost) / lines:>9.1%}  "
              f"{cut_bytes / size:>9.1%}  {changed / len(texts):>17.1%}  {seconds:7.1f}")  # fmt: skip
        for line, n in distinct.most_common(5):
            print(f"{'':>15}{n:>6} documents: {line[:70]!r}")


def _distinct(texts: list[str], threshold: int) -> Counter:
    holders: Counter = Counter()
    for text in texts:
        keys = set(normalized_units(pa.array(text.split("\n"))).to_pylist()) - {""}
        holders.update(keys)
    return Counter({k: n for k, n in holders.items() if n >= threshold})


if __name__ == "__main__":
    main()
