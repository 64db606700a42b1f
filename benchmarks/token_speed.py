"""Token counting, one core: the tokenizer library's two batch paths that
give the same counts, `Tokenizer.encode_batch` and `encode_batch_fast` (no
offsets), one thread as a Ray task with one CPU gets, against the job's
counter (stages/tokens/counter.py); the ratio is against the faster of the
two in the same run. On three corpora:

  sample   documents of the built-in generator (seven languages)
  english  its English documents only (all ASCII, as much web text is)
  mixed    the same with Python's documentation paragraphs, every Unicode
           code point in random slices, numbers, code and whitespace runs
           spliced in: many pieces the counter's cache has not seen
  real     real text (benchmarks/real_text.py: man pages, gettext catalogs,
           /usr/share/doc, Python's docs and sources; --real-mb)

and three tokenizers: the default (GPT-2's pre-tokenizer), the same BPE
behind Llama 3's pre-tokenizer (its Split pattern, then ByteLevel; Llama 3's
own tokenizer.json is a download this project does not make), and that with
an NFC normalizer in front, as Qwen2's has.

Each counter starts cold (a new one per corpus), as a worker does. Both
must give the same count for every document; the output says so.

    .venv/bin/python benchmarks/token_speed.py             # 20,000 documents
    .venv/bin/python benchmarks/token_speed.py --docs 100000

Target (issue 16): >= 20 MB/s per core.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core, before tokenizers loads

import random  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from dedupe_at_scale.sample import bank, clean_document  # noqa: E402
from dedupe_at_scale.stages.tokens.classes import regex_classes  # noqa: E402
from dedupe_at_scale.stages.tokens.counter import (  # noqa: E402
    TokenCounter,
    reference_counts,
    with_llama3_pretokenizer,
)
from dedupe_at_scale.stages.tokens.default import DEFAULT_TOKENIZER  # noqa: E402
from real_text import real_texts  # noqa: E402

BATCH = 2_000  # documents per call, as in an annotation task


def sample_corpus(docs: int, rng: random.Random) -> list[str]:
    languages = sorted(bank.BANK)
    return [clean_document(rng, rng.choice(languages)) for _ in range(docs)]


def mixed_corpus(docs: int, rng: random.Random) -> list[str]:
    import pydoc_data.topics

    paragraphs = [p for t in pydoc_data.topics.topics.values() for p in t.split("\n\n") if p]
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    out = []
    for text in sample_corpus(docs, rng):
        start = rng.randrange(len(points) - 40)
        extras = [
            rng.choice(paragraphs),
            "".join(points[start : start + rng.randint(5, 40)]),
            f"{rng.randint(0, 10**9)} {rng.random():.6f} x_{rng.randint(0, 99999)}() "
            + " " * rng.randint(1, 9),
        ]
        out.append(text + "\n" + "\n".join(extras))
    return out


def encode_batch_fast_counts(tokenizer, texts: list[str]) -> np.ndarray:
    encoded = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return np.array([len(e.ids) for e in encoded], np.int64)


def timed(count, texts: list[str]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    counts = np.concatenate([count(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    return counts, time.perf_counter() - started


def measure(name: str, texts: list[str], spec: str) -> None:
    mb = sum(len(t.encode()) for t in texts) / 1e6
    counter = TokenCounter(spec, regex_classes())
    fast, fast_s = timed(lambda chunk: counter.count(pa.array(chunk)), texts)
    reference, reference_s = timed(lambda chunk: reference_counts(counter.tokenizer, chunk), texts)
    baseline, baseline_s = timed(
        lambda chunk: encode_batch_fast_counts(counter.tokenizer, chunk), texts
    )
    print(
        f"{name}: {len(texts):,} documents, {mb:.1f} MB, {int(reference.sum()):,} tokens\n"
        f"  encode_batch      : {reference_s:7.2f} s {mb / reference_s:8.2f} MB/s\n"
        f"  encode_batch_fast : {baseline_s:7.2f} s {mb / baseline_s:8.2f} MB/s   "
        f"same counts: {bool(np.array_equal(baseline, reference))}\n"
        f"  counter           : {fast_s:7.2f} s {mb / fast_s:8.2f} MB/s   "
        f"{min(baseline_s, reference_s) / fast_s:.1f}x the faster library path; same counts: "
        f"{bool(np.array_equal(fast, reference))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--real-mb", type=float, default=25, help="MB of real text (0: skip)")
    args = parser.parse_args()
    default = DEFAULT_TOKENIZER.read_text()
    rng = random.Random(0)
    corpora = {
        "sample": sample_corpus(args.docs, rng),
        "english": [clean_document(rng, "en") for _ in range(args.docs)],
        "mixed": mixed_corpus(args.docs, rng),
    }
    if args.real_mb > 0:  # long documents, code, tables, many scripts (issue 27)
        corpora["real"] = real_texts(args.real_mb)
    llama3 = with_llama3_pretokenizer(default)
    nfc = json.dumps({**json.loads(llama3), "normalizer": {"type": "NFC"}})
    for title, spec in (
        (f"default tokenizer ({DEFAULT_TOKENIZER.name})", default),
        ("its BPE behind Llama 3's pre-tokenizer", llama3),
        ("the same behind an NFC normalizer", nfc),
    ):
        regex_classes()  # loaded once per worker, outside the timing
        warm = TokenCounter(spec, regex_classes())
        assert warm.fast, warm.problem
        warm.count(pa.array(["warm up numba"]))
        print(f"{title}, one core")
        for name, texts in corpora.items():
            measure(name, texts, spec)


if __name__ == "__main__":
    main()
