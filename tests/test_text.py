import random
import re

from dedupe_at_scale import text


def test_tokens_split_words_and_symbols():
    assert text.tokens("It's a well-known fact... #1!") == [
        "It's", "a", "well-known", "fact", "...", "#", "1", "!",
    ]  # fmt: skip
    assert text.words("Hello, world -- ok?") == ["Hello", "world", "ok"]


def test_lines_and_paragraphs():
    assert text.lines("  a \n\n b\n") == ["a", "b"]
    assert text.paragraphs("p1 l1\np1 l2\n\n\np2\n\n") == ["p1 l1\np1 l2", "p2"]


def test_sentences_latin_and_cjk():
    assert text.sentences("One here. Two there! Three? Four") == [
        "One here.",
        "Two there!",
        "Three?",
        "Four",
    ]
    assert len(text.sentences("今天天气很好。我们去公园！好吗？")) == 3


def test_single_line_collapses_whitespace():
    assert text.single_line(" a\n\nb\t c ") == "a b c"


def test_single_line_equals_the_regex_it_replaced():
    r"""str.split() against re.sub(r"\s+", " ").strip(), on every kind of
    space Python knows and on characters that only look like spaces."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    pieces = [*spaces, "\u200b", "\ufeff", "a", "é", "日", "", "  "]
    rng = random.Random(0)
    for _ in range(5000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randrange(25)))
        assert text.single_line(line) == re.sub(r"\s+", " ", line).strip(), repr(line)


def test_duplicated_elements_counts_repeats_after_first():
    assert text.duplicated_elements(["ab", "cd", "ab", "ab"]) == (2, 4)
    assert text.duplicated_elements([]) == (0, 0)


def test_top_ngram_chars():
    assert text.top_ngram_chars(["a", "b", "a", "b", "c"], 2) == 4
    assert text.top_ngram_chars(["a", "b", "c"], 2) == 0  # nothing repeats
    assert text.top_ngram_chars(["a"], 2) == 0


def test_duplicated_ngram_chars_counts_each_word_once():
    words = ["aa", "b", "c", "aa", "b", "c"]
    assert text.duplicated_ngram_chars(words, 3) == 8
    assert text.duplicated_ngram_chars(words, 2) == 8  # overlaps not double counted
    assert text.duplicated_ngram_chars(["x", "aa", "b", "y", "aa", "b"], 2) == 6
    assert text.duplicated_ngram_chars(["a", "b", "c", "d"], 2) == 0


def test_the_kernels_code_point_tables_equal_python_per_character():
    """codepoints.unicode_tables lowers every code point in one str.lower
    call; the reference is the plain loop over each character on its own."""
    import numpy as np

    from dedupe_at_scale.kernels import codepoints as cp_tables

    flags, lower = cp_tables.unicode_tables()
    is_complex = cp_tables.IS_COMPLEX
    expected_lower = np.arange(0x110000, dtype=np.int32)
    complex_ = np.zeros(0x110000, np.bool_)
    classes = {
        cp_tables.IS_WORD: r"\w",
        cp_tables.IS_SPACE: r"\s",
        cp_tables.IS_ALPHA: r"[^\W\d_]",
        cp_tables.IS_ALNUM: r"[^\W_]",
    }
    patterns = {bit: re.compile(p) for bit, p in classes.items()}
    for cp in range(0x110000):
        ch = chr(cp)
        low = ch.lower()
        if low != ch:
            if len(low) == 1:
                expected_lower[cp] = ord(low)
            else:
                complex_[cp] = True
        if cp % 97 == 0 or cp < 0x3000:  # the classes on a spread of code points
            for bit, pattern in patterns.items():
                assert bool(flags[cp] & bit) == bool(pattern.fullmatch(ch)), (hex(cp), bit)
    complex_[0x03A3] = True  # capital sigma, by design
    assert (lower == expected_lower).all()
    assert ((flags & is_complex) > 0).tolist() == complex_.tolist()
    assert complex_[0x0130]  # İ lowers to two code points
    # Around a capital sigma, one character at a time: "xcΣ" lowers to a
    # final sigma when c is cased, or case-ignorable after a cased x.
    word_like = np.flatnonzero(flags & (cp_tables.IS_WORD | cp_tables.IS_JOINER))
    for cp in word_like[::7].tolist() + [ord(c) for c in "'’-_ʰǅ"]:
        cased, ignorable = flags[cp] & cp_tables.IS_CASED, flags[cp] & cp_tables.IS_CASE_IGNORABLE
        assert ("-" + chr(cp) + "Σ").lower()[-1] == ("ς" if cased else "σ"), hex(cp)
        assert ("A" + chr(cp) + "Σ").lower()[-1] == ("ς" if cased or ignorable else "σ"), hex(cp)
