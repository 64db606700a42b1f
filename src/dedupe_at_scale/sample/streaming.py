"""A generated corpus of any size, written shard by shard in parallel, for
the scaling sweeps (benchmarks/job_scale.py --generator streaming).

The built-in sample (`generate_sample`) holds every row in memory and builds
each document from a bank of 12 x 12 x 12 sentence parts per language, so
unrelated documents share many 5-word shingles and dedup's candidate pairs
per document grow with the corpus (4.0 at 1M, 7.2 at 5M). Here:

- every document is a pure function of (seed, index), so a shard is written
  on its own with a bounded buffer and a duplicate regenerates its original
  instead of keeping it;
- a made-up word (one of 518,400) is put before every third word (every
  third character in Chinese), so unrelated documents share almost no
  shingles and the near-duplicate structure per document is the same at
  every size:
  5% exact and 5% near copies of the leading 10% of documents, always in
  another shard, as in the sample.
"""

from __future__ import annotations

import random
from array import array
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from itertools import accumulate
from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dedupe_at_scale.sample import (
    ENGLISH_KINDS,
    KIND_SHARES,
    LANGUAGES,
    SAMPLE_SCHEMA,
    SOURCE_WEIGHTS,
    SOURCES,
    bad_document,
    clean_document,
    near_copy,
)

ROW_GROUP = 500
_CONSONANTS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]  # 80
_CJK = [chr(0x4E00 + i) for i in range(3000)]
_KINDS = list(KIND_SHARES)
_CUMULATIVE = list(accumulate(KIND_SHARES.values()))


def generate_streaming(
    output: str | Path, docs: int, shards: int, seed: int = 0, processes: int = 1
) -> list[Path]:
    """Write `docs` documents over `shards` Parquet files with `processes`
    workers; the files are the same whatever the number of workers."""
    if docs < 1 or shards < 1 or processes < 1:
        raise ValueError("docs, shards and processes must be positive")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    jobs = [(output, docs, shards, seed, shard) for shard in range(shards)]
    if processes == 1:
        return [_write_shard(*job) for job in jobs]
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_write_shard, *zip(*jobs)))


def document(seed: int, index: int, docs: int, shards: int) -> dict:
    """Document `index` of a corpus of `docs` over `shards`: it lands in
    shard `index % shards`."""
    rng = random.Random(seed << 40 | index)
    head = max(1, docs // 10)
    kind = "clean" if index < head else _draw_kind(rng)
    source = rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
    language = rng.choice(LANGUAGES)
    dup_of = None
    if kind in ("exact_dup", "near_dup") and shards > 1:
        original = rng.randrange(head)
        while original % shards == index % shards:  # never in its original's shard
            original = rng.randrange(head)
        first = document(seed, original, docs, shards)
        language, dup_of, text = first["language_planted"], first["id"], first["text"]
        if kind == "near_dup":
            text = _near_copy(rng, text, language)
    elif kind in ("exact_dup", "near_dup", "clean"):
        kind, text = (
            "clean",
            _unique(rng, clean_document(rng, language, rng.randint(6, 8)), language),
        )
    else:
        language = "en" if kind in ENGLISH_KINDS else language
        text = bad_document(rng, kind, language)
        text = text if kind == "gibberish" else _unique(rng, text, language)
    return {
        "id": f"doc-{index:09d}",
        "text": text,
        "source": source,
        "url": f"https://{source}.example/{language}/{index}",
        "language_planted": language,
        "sample_kind": kind,
        "dup_of": dup_of,
    }


def _draw_kind(rng: random.Random) -> str:
    draw = rng.random() * 0.9  # the leading tenth is clean: shares stay of the whole
    for kind, bound in zip(_KINDS, _CUMULATIVE):
        if draw < bound:
            return kind
    return "clean"


def _unique(rng: random.Random, text: str, language: str) -> str:
    """`text` with a made-up word before every third word (character, in
    Chinese), so that every line still ends as it did (C4 drops a line
    without terminal punctuation)."""
    if language == "zh":
        return "\n".join(_insert(rng, list(line), _CJK, "") for line in text.split("\n"))
    return _insert(rng, text.split(" "), _made_up_words(), " ")


def _insert(rng: random.Random, pieces: list[str], extra: list[str], joiner: str) -> str:
    groups = len(pieces) // 3
    out: list[str | None] = [None] * (4 * groups)
    out[0::4] = [extra[draw % len(extra)] for draw in array("I", rng.randbytes(4 * groups))]
    for i in range(3):
        out[i + 1 :: 4] = pieces[i : 3 * groups : 3]
    return joiner.join(out + pieces[3 * groups :])


@cache
def _made_up_words() -> list[str]:
    """The 518,400 words of two or three syllables ("kamotu")."""
    two = [a + b for a in _SYLLABLES for b in _SYLLABLES]
    three = [w + c for w in two for c in _SYLLABLES]
    return two + three


def _near_copy(rng: random.Random, text: str, language: str) -> str:
    """near_copy, drawn again until it changed something: its replacement
    words can equal the ones they replace."""
    copy = near_copy(rng, text, language)
    while copy == text:
        copy = near_copy(rng, text, language)
    return copy


def _write_shard(output: Path, docs: int, shards: int, seed: int, shard: int) -> Path:
    path = output / f"shard-{shard:05d}.parquet"
    with pq.ParquetWriter(path, SAMPLE_SCHEMA, compression="zstd") as writer:
        rows: list[dict] = []
        for index in range(shard, docs, shards):
            rows.append(document(seed, index, docs, shards))
            if len(rows) == ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
                rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    return path
