"""Every quality rule on hand-built texts, without Ray."""

from __future__ import annotations

import itertools

import pytest

from conftest import GOOD_EN
from dedupe_at_scale.config import QualityConfig
from dedupe_at_scale.stages.quality import QualityFilter

GROUPS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


def only(group: str, **overrides) -> QualityFilter:
    """A filter with just one rule group on, with some thresholds changed."""
    cfg = QualityConfig()
    for name in GROUPS:
        getattr(cfg, name).enabled = name == group
    for key, value in overrides.items():
        setattr(getattr(cfg, group), key, value)
    return QualityFilter(cfg)


def failing_rule(qf: QualityFilter, text: str, language: str | None = "en"):
    verdict = qf.evaluate(text, language)
    return (verdict.rule.name if verdict.rule else None), verdict.value


def distinct_words(n: int, length: int = 5) -> list[str]:
    letters = "bcdfghklmnprstvz"
    vowels = "aeiou"
    combos = ("".join(p) for p in itertools.product(letters, vowels, letters, vowels, letters))
    return [w[:length] for w in itertools.islice(combos, n)]


def test_good_english_text_passes_every_rule_with_defaults():
    verdict = QualityFilter(QualityConfig()).evaluate(GOOD_EN, "en")
    assert verdict.kept, verdict.reason
    assert verdict.signals["gopher_word_count"] > 90
    assert verdict.signals["gopher_stop_words"] >= 2
    assert verdict.signals["c4_sentences"] == 6


# Gopher quality -------------------------------------------------------------


def test_min_words():
    assert failing_rule(only("gopher_quality"), "Short text with five words.") == (
        "gopher_min_words",
        5.0,
    )


def test_max_words():
    rule, value = failing_rule(only("gopher_quality", max_words=60), GOOD_EN)
    assert rule == "gopher_max_words" and value > 60


def test_min_mean_word_length():
    text = " ".join(distinct_words(80, length=2)) + "."
    assert failing_rule(only("gopher_quality", min_stop_words=None), text) == (
        "gopher_min_mean_word_length",
        2.0,
    )


def test_max_mean_word_length():
    text = " ".join(w * 3 for w in distinct_words(60)) + "."  # 15-letter words
    assert failing_rule(only("gopher_quality", min_stop_words=None), text) == (
        "gopher_max_mean_word_length",
        15.0,
    )


def test_hash_to_word_ratio():
    text = GOOD_EN + " #news" * 40
    rule, value = failing_rule(only("gopher_quality"), text)
    assert rule == "gopher_hash_to_word_ratio"
    assert value == pytest.approx(40 / (len(GOOD_EN.split()) + 40), rel=0.05)


def test_ellipsis_to_word_ratio():
    text = GOOD_EN + " ..." * 20 + " …" * 10
    rule, value = failing_rule(only("gopher_quality"), text)
    assert rule == "gopher_ellipsis_to_word_ratio"
    assert value == pytest.approx(30 / len(GOOD_EN.split()), rel=0.05)


def test_bullet_lines_ratio():
    words = distinct_words(100)
    text = "\n".join(f"- the {' '.join(words[i : i + 9])} and" for i in range(0, 100, 10))
    assert failing_rule(only("gopher_quality"), text) == ("gopher_bullet_lines_ratio", 1.0)


def test_ellipsis_lines_ratio():
    lines = GOOD_EN.split("\n")
    text = "\n".join(line.rstrip(".") + "…" if i % 2 == 0 else line for i, line in enumerate(lines))
    rule, value = failing_rule(only("gopher_quality", max_ellipsis_to_word_ratio=None), text)
    # Lines 0, 2, 4 and 6 end in an ellipsis; line 3 is blank and not counted.
    assert rule == "gopher_ellipsis_lines_ratio" and value == pytest.approx(4 / 6)


def test_alpha_words_ratio():
    text = GOOD_EN + " " + " ".join(str(1000 + i) for i in range(60))
    rule, value = failing_rule(only("gopher_quality"), text)
    assert rule == "gopher_alpha_words_ratio" and value < 0.8


def test_stop_words_apply_to_english_only():
    text = " ".join(distinct_words(80)) + "."
    qf = only("gopher_quality")
    assert failing_rule(qf, text, "en") == ("gopher_stop_words", 0.0)
    assert failing_rule(qf, text, "de") == (None, None)  # no German stop-word list
    qf_de = only("gopher_quality", stop_words={"de": ["der", "die", "und"]})
    assert failing_rule(qf_de, text, "de") == ("gopher_stop_words", 0.0)


def test_word_rules_skip_unsegmented_languages():
    text = "我们的邻居是一位历史老师。她出版了一本山谷徒步路线的指南。"
    qf = only("gopher_quality")
    assert failing_rule(qf, text, "zh") == (None, None)
    assert failing_rule(qf, text, "en")[0] == "gopher_min_words"


def test_none_threshold_switches_a_rule_off():
    assert failing_rule(only("gopher_quality", min_words=None), "Short text, five words.")[0] != (
        "gopher_min_words"
    )


# Gopher repetition ----------------------------------------------------------


def test_duplicate_lines():
    text = "The same line again and again.\n" * 3 + "A different closing line."
    assert failing_rule(only("gopher_repetition"), text) == ("gopher_duplicate_lines", 0.5)


def test_duplicate_paragraphs():
    para = "First line of the paragraph.\nSecond line of it."
    text = "\n\n".join([para, para, "Another paragraph entirely."])
    rule, value = failing_rule(only("gopher_repetition", max_duplicate_lines_fraction=None), text)
    assert (rule, value) == ("gopher_duplicate_paragraphs", pytest.approx(1 / 3))


def test_duplicate_line_chars():
    long_line = "This is a rather long line that is repeated exactly once in the text."
    text = "\n".join([long_line, long_line, *GOOD_EN.split("\n")[:2]])
    rule, value = failing_rule(only("gopher_repetition"), text)
    assert rule == "gopher_duplicate_line_chars"
    assert value == pytest.approx(len(long_line) / len(text))


def test_top_ngram_fraction():
    words = distinct_words(40)
    text = " ".join(f"{w} machine learning" for w in words)
    rule, value = failing_rule(only("gopher_repetition"), text)
    assert rule == "gopher_top_2gram"
    # 40 occurrences of "machine learning" (15 word characters) over all word characters.
    assert value == pytest.approx(40 * 15 / (40 * 5 + 40 * 15))


def test_duplicated_5grams():
    words = distinct_words(60)
    phrase = "one two three four five"
    text = (
        " ".join(words[:20])
        + f" {phrase} "
        + " ".join(words[20:40])
        + f" {phrase} "
        + " ".join(words[40:])
    )
    qf = only("gopher_repetition", duplicate_ngram_max_chars_fraction={5: 0.05})
    rule, value = failing_rule(qf, text)
    phrase_chars = sum(len(w) for w in phrase.split())
    assert rule == "gopher_duplicate_5grams"
    assert value == pytest.approx(2 * phrase_chars / (60 * 5 + 2 * phrase_chars))


# C4 ---------------------------------------------------------------------------


def test_lorem_ipsum():
    assert failing_rule(only("c4"), GOOD_EN + "\nLorem ipsum dolor sit amet.") == (
        "c4_lorem_ipsum",
        1.0,
    )


def test_curly_brace():
    assert failing_rule(only("c4"), GOOD_EN + "\nfunction f() { return 1; }") == (
        "c4_curly_brace",
        1.0,
    )


def test_min_sentences_counts_only_lines_c4_keeps():
    lines = GOOD_EN.split("\n")[:4]
    noise = [
        "Please enable JavaScript to read the rest of this article.",
        "This site uses cookies, see our privacy policy for details.",
        "Menu without a full stop at the end",
        "Ok.",
    ]
    text = "\n".join(lines + noise)
    assert failing_rule(only("c4"), text) == ("c4_min_sentences", 3.0)  # lines[3] is blank
    lenient = only(
        "c4",
        remove_javascript_lines=False,
        remove_policy_lines=False,
    )
    assert failing_rule(lenient, text) == (None, None)


def test_clean_text_keeps_only_c4_lines():
    text = GOOD_EN + "\nPlease enable JavaScript to continue.\nHome"
    verdict = only("c4", clean_text=True).evaluate(text, "en")
    assert verdict.kept
    assert "JavaScript" not in verdict.text and "Home" not in verdict.text
    assert "The river" in verdict.text
    assert only("c4").evaluate(text, "en").text is None  # default: text untouched


def test_c4_words_per_line_skips_chinese():
    # One whitespace "word" per line: C4's three-words-per-line rule would drop all.
    text = "\n".join(f"第{i}句话说明了这个城市的历史。" for i in range(6))
    assert failing_rule(only("c4"), text, "zh") == (None, None)
    assert failing_rule(only("c4"), text, "en")[0] == "c4_min_sentences"


# FineWeb ----------------------------------------------------------------------


def test_line_punctuation_ratio():
    text = "\n".join(f"A line about topic number {i} without any final mark" for i in range(10))
    assert failing_rule(only("fineweb"), text) == ("fineweb_line_punctuation", 0.0)


def test_short_lines():
    text = "\n".join(["Yes.", "No.", "Maybe.", GOOD_EN.split("\n")[0]])
    assert failing_rule(only("fineweb"), text) == ("fineweb_short_lines", 0.75)


def test_duplicate_line_chars_ratio():
    line = GOOD_EN.split("\n")[0]
    text = GOOD_EN + "\n" + line
    rule, value = failing_rule(only("fineweb"), text)
    assert rule == "fineweb_duplicate_line_chars"
    assert value == pytest.approx(len(line) / len(text.replace("\n", "")))


def test_newline_to_word_ratio():
    words = distinct_words(40)
    text = "\n".join(f"{words[i]} {words[i + 1]}." for i in range(0, 40, 2))
    qf = only("fineweb", max_short_line_ratio=None)
    rule, value = failing_rule(qf, text)
    assert rule == "fineweb_newline_to_word_ratio"
    assert value == pytest.approx(19 / 40)


# Order and switches -----------------------------------------------------------


def test_first_failing_rule_wins_in_published_order():
    # Fails repetition (duplicate lines) and Gopher quality (too few words):
    # repetition runs first, as in FineWeb's pipeline.
    text = "Buy now.\nBuy now.\nBuy now."
    assert failing_rule(QualityFilter(QualityConfig()), text)[0] == "gopher_duplicate_lines"


def test_disabled_group_is_skipped():
    cfg = QualityConfig()
    cfg.gopher_repetition.enabled = False
    cfg.gopher_quality.enabled = False
    text = "Buy now.\nBuy now.\nBuy now."
    assert failing_rule(QualityFilter(cfg), text)[0] == "c4_min_sentences"


def test_reason_names_rule_value_and_threshold():
    verdict = only("gopher_quality").evaluate("Too short.", "en")
    assert verdict.reason == "gopher_min_words: 2 < 50"
