"""Built-in multilingual sample corpus with planted problems.

Besides clean documents in seven languages it plants exact and near duplicates
(always in a different shard from their original), boilerplate pages, spam,
gibberish, lorem ipsum and too-short documents. The columns `sample_kind` and
`dup_of` record the ground truth, so tests and benchmarks can score the job.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dedupe_at_scale.sample import bank

LANGUAGES = list(bank.BANK)
SOURCES = ["web", "news", "forum", "encyclopedia"]
SOURCE_WEIGHTS = [0.55, 0.2, 0.15, 0.1]

# Share of each planted kind; the rest are clean originals.
KIND_SHARES = {
    "exact_dup": 0.05,
    "near_dup": 0.05,
    "short": 0.03,
    "spam": 0.03,
    "boilerplate": 0.03,
    "gibberish": 0.02,
    "lorem": 0.01,
}
# Planted kinds whose text is English whatever language was drawn.
ENGLISH_KINDS = ("boilerplate", "lorem", "spam", "gibberish")


def clean_document(rng: random.Random, language: str, sentences: int | None = None) -> str:
    parts = bank.BANK[language]
    count = sentences or rng.randint(7, 12)
    picks = [rng.sample(parts[key], count) for key in ("subject", "predicate", "complement")]
    joiner = bank.SENTENCE_JOINER.get(language, " ")
    built = [_fill(rng, " ".join(triple) if joiner else "".join(triple)) for triple in zip(*picks)]
    paragraphs, i = [], 0
    while i < len(built):
        size = rng.randint(2, 4)
        paragraphs.append(joiner.join(built[i : i + size]))
        i += size
    return "\n\n".join(paragraphs)


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        city=rng.choice(bank.CITIES), name=rng.choice(bank.NAMES), n=rng.randint(2, 400)
    )


def near_copy(rng: random.Random, text: str, language: str) -> str:
    """A copy with one or two small edits (Jaccard of 5-gram shingles ~0.8-0.95)."""
    if language in bank.SENTENCE_JOINER:  # no spaces: edit characters
        chars = list(text)
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(chars))
            if chars[i] not in "。\n":
                chars[i] = rng.choice("的一是在有人这中大为")
        return "".join(chars)
    words = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(words))
        if "\n" not in words[i]:
            words[i] = rng.choice(["very", "quite", "new", "old", "small", "big"])
    return " ".join(words)


def bad_document(rng: random.Random, kind: str, language: str) -> str:
    if kind == "short":
        return clean_document(rng, language, sentences=rng.randint(1, 2))
    if kind == "spam":
        product = rng.choice(bank.SPAM_PRODUCTS)
        lines = [rng.choice(bank.SPAM_LINES).format(product=product) for _ in range(12)]
        return "\n".join(lines)
    if kind == "boilerplate":
        nav = rng.sample(bank.NAV_LINES, 10)
        body = clean_document(rng, "en", sentences=3).replace("\n\n", " ")
        return "\n".join([*nav, bank.JAVASCRIPT_LINE, body, bank.COOKIE_LINE, "Copyright 2026"])
    if kind == "gibberish":
        letters = "bcdfghjklmnpqrstvwxz"
        words = ["".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(80)]
        return "\n".join(" ".join(words[i : i + 10]) + "." for i in range(0, 80, 10))
    if kind == "lorem":
        return "\n\n".join([bank.LOREM, clean_document(rng, "en", sentences=6)])
    raise ValueError(f"unknown kind {kind}")


def generate_sample(
    output: str | Path, docs: int = 6000, shards: int = 8, seed: int = 0
) -> list[Path]:
    """Write `docs` documents over `shards` Parquet files; returns the paths."""
    if docs < 1 or shards < 1:
        raise ValueError("docs and shards must be positive")
    rng = random.Random(seed)
    kinds = _kind_plan(rng, docs)
    rows: list[dict] = []
    shard_of: list[int] = []
    originals: list[int] = []
    for i, kind in enumerate(kinds):
        language = rng.choice(LANGUAGES)
        row = {
            "id": f"doc-{i:07d}",
            "source": rng.choices(SOURCES, SOURCE_WEIGHTS)[0],
            "sample_kind": kind,
            "dup_of": None,
        }
        shard = rng.randrange(shards)
        if kind in ("exact_dup", "near_dup"):
            original = rows[rng.choice(originals)]
            language = original["language_planted"]
            row["dup_of"] = original["id"]
            text = original["text"]
            row["text"] = text if kind == "exact_dup" else near_copy(rng, text, language)
            # Never in the original's shard: duplicates must be found across shards.
            home = shard_of[int(original["id"].removeprefix("doc-"))]
            shard = (home + 1 + rng.randrange(shards - 1)) % shards if shards > 1 else home
        elif kind == "clean":
            row["text"] = clean_document(rng, language)
            originals.append(i)
        else:
            language = "en" if kind in ENGLISH_KINDS else language
            row["text"] = bad_document(rng, kind, language)
        row["language_planted"] = language
        row["url"] = f"https://{row['source']}.example/{language}/{i}"
        rows.append(row)
        shard_of.append(shard)
    return _write_shards(Path(output), rows, shard_of, shards, rng)


def _kind_plan(rng: random.Random, docs: int) -> list[str]:
    planted = [kind for kind, share in KIND_SHARES.items() for _ in range(round(docs * share))]
    # A leading run of clean originals, so every duplicate has one to copy.
    head = max(1, docs // 10)
    rest = (planted + ["clean"] * docs)[: max(0, docs - head)]
    rng.shuffle(rest)
    return ["clean"] * (docs - len(rest)) + rest


def _write_shards(
    output: Path, rows: list[dict], shard_of: list[int], shards: int, rng: random.Random
) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(shards):
        members = [row for row, s in zip(rows, shard_of) if s == shard]
        rng.shuffle(members)
        table = pa.Table.from_pylist(members, schema=SAMPLE_SCHEMA)
        path = output / f"shard-{shard:05d}.parquet"
        pq.write_table(table, path, row_group_size=500, compression="zstd")
        paths.append(path)
    return paths


SAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("language_planted", pa.string()),
        ("sample_kind", pa.string()),
        ("dup_of", pa.string()),
    ]
)
