"""How much of a document language ID needs to read: accuracy and speed of
fastText lid.176 on the first N characters, N = 1,000 / 2,000 / 5,000 /
20,000, on two collections with known languages, in one run:

  sample       the built-in generated corpus (`language_planted`)
  translations the gettext catalogs installed on this machine
               (/usr/share/locale/LANG/LC_MESSAGES/*.mo): each catalog's
               translated strings joined into one document, labelled with
               the catalog's language; real, messy, multilingual text

Prints, per N and collection: accuracy against the label, agreement with the
longest prefix, and docs/s and MB/s of the predict call on one core.

    .venv/bin/python benchmarks/langid_prefix.py
"""

from __future__ import annotations

import argparse
import gettext
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.langid import LanguageIdentifier

PREFIXES = (1_000, 2_000, 5_000, 20_000)
LOCALE_DIR = Path("/usr/share/locale")
# Catalog directory names whose language code differs from lid.176's label.
LABEL_ALIASES = {"nb": "no", "nn": "nn", "zh_CN": "zh", "zh_TW": "zh", "zh_HK": "zh"}


def catalog_documents(per_language: int, min_chars: int, seed: int) -> list[tuple[str, str]]:
    """(language, text) per installed .mo catalog with at least `min_chars`
    of translated text, at most `per_language` catalogs per language."""
    known = {label.removeprefix("__label__") for label in LanguageIdentifier().model.labels}
    by_language: dict[str, list[str]] = defaultdict(list)
    for mo in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.mo")):
        locale = mo.parts[-3]
        language = LABEL_ALIASES.get(locale, re.split(r"[_@.]", locale)[0])
        if language not in known:
            continue
        try:
            with mo.open("rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog
        except (OSError, ValueError, LookupError):  # unreadable or mis-encoded catalogs
            continue
        strings = [
            value
            for key, value in catalog.items()
            if isinstance(value, str) and key and value and value != key
        ]
        text = "\n".join(strings)
        if len(text) >= min_chars:
            by_language[language].append(text)
    rng = random.Random(seed)
    docs = []
    for language, texts in sorted(by_language.items()):
        rng.shuffle(texts)
        docs += [(language, t) for t in texts[:per_language]]
    return docs


def sample_documents(docs: int) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample(tmp, docs=docs, shards=2, seed=5)
        table = pq.read_table(tmp, columns=["language_planted", "text"])
    return list(zip(table.column("language_planted").to_pylist(), table.column("text").to_pylist()))


def measure(docs: list[tuple[str, str]], max_chars: int, repeats: int = 3):
    lid = LanguageIdentifier(max_chars=max_chars)
    texts = [t for _, t in docs]
    seconds = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predicted, _ = lid.predict(texts)
        seconds = min(seconds, time.perf_counter() - started)
    read_mb = sum(len(t[:max_chars].encode()) for t in texts) / 1e6
    return predicted, seconds, read_mb


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample-docs", type=int, default=20_000)
    parser.add_argument("--per-language", type=int, default=25)
    parser.add_argument("--min-chars", type=int, default=20_000)
    args = parser.parse_args()

    collections = {
        "sample": sample_documents(args.sample_docs),
        "translations": catalog_documents(args.per_language, args.min_chars, seed=1),
    }
    for name, docs in collections.items():
        lengths = sorted(len(t) for _, t in docs)
        print(f"{name}: {len(docs)} documents, {len({lang for lang, _ in docs})} languages, "
              f"median {lengths[len(lengths) // 2]:,} characters")  # fmt: skip
    print(f"\n{'collection':13} {'max_chars':>9} {'accuracy':>9} {'agrees w/ 20k':>14} "
          f"{'docs/s':>8} {'MB/s read':>10}")  # fmt: skip
    for name, docs in collections.items():
        labels = [lang for lang, _ in docs]
        runs = {n: measure(docs, n) for n in PREFIXES}
        longest = runs[max(PREFIXES)][0]
        for n, (predicted, seconds, read_mb) in runs.items():
            accuracy = sum(p == t for p, t in zip(predicted, labels)) / len(docs)
            agree = sum(p == q for p, q in zip(predicted, longest)) / len(docs)
            print(f"{name:13} {n:9,d} {accuracy:9.2%} {agree:14.2%} "
                  f"{len(docs) / seconds:8,.0f} {read_mb / seconds:10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
