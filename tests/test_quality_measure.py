"""The job's rule engine (QualityFilter.evaluate_batch: every signal counted
by the native kernel in stages/quality/measure.py) against the pure-Python
reference (QualityFilter.evaluate, one document at a time): the same first
failing rule, value and signals, and the same cleaned text, on the sample,
on adversarial texts and on random texts built from hostile pieces."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.stages.quality import Doc, QualityFilter

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
    "python_lowers_by_context": "ΟΔΟΣ ΚΑΙ ΣΠΙΤΙ. İSTANBUL İS BIG. " * 30,
    "unicode_spaces": "word\u2028word\x85word\x1cword\u3000word. " * 40,
    "sentence_closers": 'He said "stop." Then (again!) she left.» Next。Line？End' * 20,
    "policy_mixed_case": "This site USES COOKIES to work.\nRead our Privacy Policy now.\n" * 10,
}

# Pieces that sit on the edges of the rules: joiners, underscores, spaces
# Python counts and regexes may not, closers, ellipses, bullets, phrases in
# other cases, a Kelvin sign that lower-cases to k, scripts without spaces.
PIECES = [
    "a", "b", "the", "and", "of", "_", "'", "’", "-", " ", "  ", "\n", "\n\n", "\r", "\r\n",
    "\t", "\x00", "\x1c", "\x85", "\u2028", "\u00a0", ".", "...", "…", "!", "?", "。", "！",
    "？", "؟", "।", '"', "”", "»", ")", "]", "#", "{", "•", "*", "·", "\u212a", "é",
    "e\u0301", "日本", "ไทย", "مرحبا", "😀", "½", "²", "3", "x_y", "JavaScript", "Lorem Ipsum",
    "privacy policy", "uses cookies", "TERMS OF USE", "word", "Word", "WORD",
    "www.example.com/a?b=1",
    # Python lowers these by context or into two characters: capital sigma
    # (final after a cased letter, unless one follows, skipping case-ignorable
    # ones such as ' and the modifier letter ʰ), İ, and Greek words.
    "Σ", "ΣΑΣ", "İ", "İS", "ʰ", "\u0345", "ǅ", "ΟΔΟΣ", "σ",
]  # fmt: skip
LANGUAGES = ["en", "de", None, "zh", "th", "xx", "ja"]

CONFIGS = {
    "default": {},
    # Other n: unigrams, n-grams that overlap the duplicate family, unsorted keys;
    # C4 cleaning and no minimum words per line; short lines of 5 characters.
    "other_settings": {"quality": {
        "gopher_repetition": {
            "top_ngram_max_chars_fraction": {5: 0.1, 1: 0.5},
            "duplicate_ngram_max_chars_fraction": {3: 0.2, 2: 0.3, 12: 0.05},
        },
        "c4": {"clean_text": True, "min_words_per_line": None},
        "fineweb": {"short_line_length": 5},
    }},
    # Rules switched off: the next ones decide; C4 keeps unpunctuated lines.
    "rules_off": {"quality": {
        "c4": {"remove_lines_without_terminal_punctuation": False, "max_word_length": 3},
        "gopher_quality": {"min_words": None, "stop_words": {"en": ["the", "Of"], "de": []}},
    }},
}  # fmt: skip


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    lengths = [rng.randrange(60) for _ in range(count)] + [rng.randrange(600) for _ in range(99)]
    return ["".join(rng.choice(PIECES) for _ in range(k)) for k in lengths]


def assert_same_verdicts(engine: QualityFilter, texts: list[str], languages: list) -> Counter:
    """Same verdicts; and every group's signals on every document, also
    those a failing rule of an earlier group keeps out of the verdict."""
    arrow_texts, arrow_languages = pa.array(texts, pa.string()), pa.array(languages, pa.string())
    batch = engine.evaluate_batch(arrow_texts, arrow_languages)
    rules: Counter = Counter()
    for i, (text, language) in enumerate(zip(texts, languages)):
        want, got = engine.evaluate(text, language), batch.verdict(i)
        assert (got.rule, got.value, got.text) == (want.rule, want.value, want.text), repr(text)
        assert got.signals == want.signals, repr(text)
        rules[want.rule.name if want.rule else None] += 1
        doc = Doc(text, language, engine.unsegmented)
        every = {k: v for group in engine.groups for k, v in group.measure(doc).items()}
        measured = {k: float(v[i]) for k, v in batch.signals.items() if not np.isnan(v[i])}
        assert measured == every, repr(text)
    return rules


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_the_kernel_gives_the_reference_verdicts_on_the_sample_and_adversarial_texts(
    sample_dir, case
):
    engine = QualityFilter(config_from_dict(CONFIGS[case]).quality)
    table = pq.read_table(sample_dir, columns=["text", "language_planted"])
    # The 5 MB line costs the plain-Python reference 32 s: its size is the
    # same test under every config, so the default config alone takes it.
    adversarial = {
        k: v for k, v in ADVERSARIAL.items() if case == "default" or k != "one_long_line"
    }
    texts = table.column("text").to_pylist() + list(adversarial.values())
    languages = table.column("language_planted").to_pylist()
    languages += ["zh" if k == "cjk" else "th" if k == "thai" else "en" for k in adversarial]
    languages[-3:] = [None, "de", "xx"]  # no language, another, an unknown one
    rules = assert_same_verdicts(engine, texts, languages)
    assert any(str(name).startswith(("gopher_top_", "gopher_duplicate_")) for name in rules)
    if case == "default":  # the sample is mostly good text
        assert rules[None] > len(texts) / 2


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_the_kernel_gives_the_reference_verdicts_on_random_hostile_texts(case):
    engine = QualityFilter(config_from_dict(CONFIGS[case]).quality)
    texts = random_texts(seed=len(case), count=2000)
    languages = [LANGUAGES[i % len(LANGUAGES)] for i in range(len(texts))]
    rules = assert_same_verdicts(engine, texts, languages)
    assert len(rules) >= 8, rules  # many different rules decide, not one


def test_words_python_lowers_by_context_count_as_python_lowers_them():
    # Stop words as lower() makes them: a sigma is final or not by its
    # neighbours, skipping case-ignorable ones (’ and ʰ) both ways; İS
    # lowers to "i̇s" (i + U+0307).
    greek = ["ΣΑΣ", "ΟΔΟΣ", "ΚΑΙ", "Α’Σ", "ΑΣ’Β", "ΣΑΣʰ"]
    stop = {"el": [w.lower() for w in greek], "tr": ["İS".lower(), "büyük"]}
    engine = QualityFilter(config_from_dict({"quality": {"gopher_quality": {
        "stop_words": stop, "min_stop_words": None}}}).quality)  # fmt: skip
    texts = [
        "ΣΑΣ ΚΑΙ ΟΔΟΣ. " * 20,
        "Α’Σ ΑΣ’Β ΣΑΣʰ ΟΔΟΣ'Σ ΑΣʰΑ Σ-Σ. " * 20,
        "İSTANBUL İS BÜYÜK. İS İS. " * 20,
        "σας και οδος, not a capital in sight. " * 20,
    ]
    languages = ["el", "el", "tr", "el"]
    assert_same_verdicts(engine, texts, languages)
    batch = engine.evaluate_batch(pa.array(texts), pa.array(languages))
    stop_words = batch.signals["gopher_stop_words"]
    assert stop_words.tolist() == [60.0, 60.0, 80.0, 60.0]
    counts = engine.measurer.count(pa.array(texts), pa.array(languages), np.ones(4, bool))
    # İ lowers to two characters: the n-grams' lengths are lower()'s.
    assert (counts["lowered_word_chars"] - counts["word_chars"]).tolist() == [0, 0, 80, 0]


def test_nulls_count_as_empty_text_and_a_sliced_array_starts_where_it_says():
    engine = QualityFilter(config_from_dict({}).quality)
    texts = pa.array(["skip me", "", "A short line.", None, "last one " * 60]).slice(1)
    languages = ["en", None, "de", "en"]
    batch = engine.evaluate_batch(texts, pa.array(languages, pa.string()))
    for i, language in enumerate(languages):
        want = engine.evaluate(texts[i].as_py() or "", language)
        got = batch.verdict(i)
        assert (got.rule, got.value, got.signals) == (want.rule, want.value, want.signals)
    assert batch.verdict(3).rule.name == "gopher_top_2gram"  # not an empty text


@pytest.mark.parametrize("case", ["default", "other_settings"])
def test_rows_measured_in_place_give_the_verdicts_of_the_rows_taken(sample_dir, case):
    # The stage hands the kernel its active rows' positions, not a copy of
    # their text: the reference is the take it replaced, on a sliced array,
    # with C4's cleaning ("other_settings"), which reads the texts again.
    engine = QualityFilter(config_from_dict(CONFIGS[case]).quality)
    table = pq.read_table(sample_dir, columns=["text", "language_planted"]).slice(0, 600)
    texts = table.column("text").to_pylist() + random_texts(seed=7, count=300)
    languages = table.column("language_planted").to_pylist()
    languages += [LANGUAGES[i % len(LANGUAGES)] for i in range(len(texts) - len(languages))]
    arrow_texts = pa.array(["not this one", *texts], pa.string()).slice(1)
    arrow_languages = pa.array(languages, pa.string())
    rows = np.flatnonzero(np.random.default_rng(3).random(len(texts)) < 0.6)
    taken = engine.evaluate_batch(
        arrow_texts.take(pa.array(rows)), arrow_languages.take(pa.array(rows))
    )
    in_place = engine.evaluate_batch(arrow_texts, arrow_languages, rows)
    assert len(in_place.kept) == len(rows) < len(texts)
    for i in range(len(rows)):
        got, want = in_place.verdict(i), taken.verdict(i)
        assert (got.rule, got.value, got.text) == (want.rule, want.value, want.text)
        assert got.signals == want.signals
    assert in_place.texts == taken.texts
    if case == "other_settings":
        assert in_place.texts, "C4 cleaned no text: the rows' texts were not read again"
