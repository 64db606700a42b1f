"""The batch n-gram kernel (stages/quality/ngrams.py) against the per-document
reference (text.top_ngram_chars / duplicated_ngram_chars), and the batch rule
engine against the document-at-a-time one: same verdicts, values and signals
on the sample and on adversarial texts."""

from __future__ import annotations

import random

import pyarrow.parquet as pq
import pytest

from dedupe_at_scale import text as textlib
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.stages.quality import QualityFilter
from dedupe_at_scale.stages.quality.ngrams import ngram_chars

TOP, DUP = (2, 3, 4), (5, 6, 7, 8, 9, 10)


def reference(words: list[str]) -> tuple[list[int], list[int]]:
    top = [textlib.top_ngram_chars(words, n) for n in TOP]
    dup = [textlib.duplicated_ngram_chars(words, n) for n in DUP]
    return top, dup


def word_lists(seed: int) -> list[list[str]]:
    """Small vocabularies make many repeats and many ties between n-grams."""
    rng = random.Random(seed)
    lists: list[list[str]] = [[], ["x"], ["a", "a"], ["a"] * 12, ["ab", "a", "b"] * 5]
    for vocabulary in (["a", "b"], ["x", "y", "zz", "w"], ["é", "日本", "😀", "a\u0301"]):
        lists += [[rng.choice(vocabulary) for _ in range(rng.randrange(0, 40))] for _ in range(400)]
    # Boundary lengths: exactly n words, n + 1 words.
    lists += [["p", "q"] * k for k in range(1, 12)]
    return lists


def test_kernel_equals_the_reference_on_repetitive_word_lists():
    lists = word_lists(seed=1)
    top, dup = ngram_chars(lists, TOP, DUP)
    for i, words in enumerate(lists):
        assert (top[i].tolist(), dup[i].tolist()) == reference(words), words


def test_kernel_equals_the_reference_on_the_sample(sample_dir):
    texts = pq.read_table(sample_dir, columns=["text"]).column("text").to_pylist()
    lists = [" ".join(textlib.words(t)).lower().split(" ") if t.strip() else [] for t in texts]
    top, dup = ngram_chars(lists, TOP, DUP)
    for i, words in enumerate(lists):
        assert (top[i].tolist(), dup[i].tolist()) == reference(words)


ADVERSARIAL = {
    "cjk": "我们很早就回到了村子。" * 40 + "\n" + "山里的天气变化很快。" * 30,
    "thai": "สวัสดีครับ ผมชื่อสมชาย " * 50,
    "arabic": "مرحبا بكم في المدينة القديمة " * 40 + "\n\nالنهر يمر عبر المدينة.",
    "hebrew": "שלום לכולם בעיר העתיקה " * 40,
    "emoji_combining": ("Cafe\u0301 😀 na\u0308ive 👍🏽 tiny 🇩🇪 words " * 30),
    "nul_control": ("The river\x00 runs\x07 through the town\x1b. " * 40),
    "crlf_and_cr": (
        "The mills became a museum.\r\nVisitors walk by the water.\rChildren learn. " * 40
    ),
    "one_long_line": "the same few words again and again " * 150_000,  # 5 MB, one line
    "empty_lines": "\n" * 10_000,
    "only_punctuation": "!?.,;:-–—()[]{}<>…#*•" * 200,
    "only_whitespace": " \t\n\r\u00a0\u2003" * 500,
    "only_urls": "\n".join(f"https://example.com/page/{i}?q={i % 7}" for i in range(2000)),
    "repeated_paragraphs": ("A paragraph that repeats itself word for word.\n\n" * 60),
    "boilerplate": ("Home | About | Contact | Login\n" * 100 + "Real text follows here once."),
}


CONFIGS = {
    "default": {},
    # Other n: unigrams, n-grams that overlap the duplicate family, unsorted keys.
    "other_ngrams": {"quality": {"gopher_repetition": {
        "top_ngram_max_chars_fraction": {5: 0.1, 1: 0.5},
        "duplicate_ngram_max_chars_fraction": {3: 0.2, 2: 0.3, 12: 0.05},
    }}},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_batch_engine_gives_the_reference_verdicts(sample_dir, case):
    engine = QualityFilter(config_from_dict(CONFIGS[case]).quality)
    table = pq.read_table(sample_dir, columns=["text", "language_planted"])
    texts = table.column("text").to_pylist() + list(ADVERSARIAL.values())
    languages = table.column("language_planted").to_pylist()
    languages += ["zh" if k == "cjk" else "th" if k == "thai" else "en" for k in ADVERSARIAL]
    languages[-3:] = [None, "de", "xx"]  # no language, another, an unknown one
    batch = engine.evaluate_batch(texts, languages)
    for text, language, got in zip(texts, languages, batch):
        want = engine.evaluate(text, language)
        assert (got.rule, got.value, got.text) == (want.rule, want.value, want.text)
        assert got.signals == want.signals
    # The n-gram signals decide verdicts here, so equal verdicts test them.
    names = [v.rule.name for v in batch if v.rule is not None]
    assert any(name.startswith(("gopher_top_", "gopher_duplicate_")) for name in names)
