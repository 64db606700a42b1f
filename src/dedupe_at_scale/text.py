"""Plain text helpers shared by the stages: tokens, lines, paragraphs, sentences."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

# A word is a run of word characters, optionally joined by ' or -; anything
# else that is not space becomes a symbol token ("#", "...", "|").
WORD_JOINERS = "'’-"
# A sentence ends after one of these, then optional closing quotes or
# brackets and whitespace (or the end); CJK full stops need no space after.
SENTENCE_ENDS = ".!?。！？؟।"
CJK_SENTENCE_ENDS = "。！？"
CLOSERS = "\"'”’»)]"
_WORD_PATTERN = f"\\w+(?:[{re.escape(WORD_JOINERS)}]\\w+)*"
_TOKEN_RE = re.compile(_WORD_PATTERN + r"|[^\w\s]+")
_WORD_RE = re.compile(_WORD_PATTERN)
_HAS_ALPHA_RE = re.compile(r"[^\W\d_]")
_PARAGRAPH_SPLIT_RE = re.compile(r"\n{2,}")
_SENTENCE_END_RE = re.compile(
    f"(?<=[{re.escape(SENTENCE_ENDS)}])[{re.escape(CLOSERS)}]*(?:\\s+|$)"
    f"|(?<=[{re.escape(CJK_SENTENCE_ENDS)}])"
)

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "»", "。", "！", "？", "؟", "।")
ELLIPSES = ("...", "…")
BULLETS = ("•", "-", "*", "·", "‣", "◦", "▪")


def tokens(text: str) -> list[str]:
    """Word and symbol tokens of `text` in order."""
    return _TOKEN_RE.findall(text)


def is_word(token: str) -> bool:
    """True for tokens with at least one letter or digit (not pure symbols)."""
    return any(ch.isalnum() for ch in token)


def words(text: str) -> list[str]:
    """Tokens that are words, not symbols (same as filtering `tokens` by `is_word`)."""
    return [w for w in _WORD_RE.findall(text) if w.strip("_'’-")]


def has_alpha(word: str) -> bool:
    return _HAS_ALPHA_RE.search(word) is not None


def lines(text: str) -> list[str]:
    """Non-empty lines, stripped of surrounding whitespace."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines."""
    return [p.strip() for p in _PARAGRAPH_SPLIT_RE.split(text.strip()) if p.strip()]


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation (Latin, CJK, Arabic, Devanagari)."""
    parts = _SENTENCE_END_RE.split(text)
    return [p.strip() for p in parts if p and p.strip() and is_word(p)]


def single_line(text: str) -> str:
    r"""Collapse all whitespace (newlines included) into single spaces.
    str.split() splits at the characters `\s` matches and drops the ends:
    the same as re.sub(r"\s+", " ", text).strip(), three times faster."""
    return " ".join(text.split())


def duplicated_elements(elements: Sequence[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them), counting each
    occurrence after the first, as Gopher's repetition filter does."""
    seen: set[str] = set()
    count = chars = 0
    for element in elements:
        if element in seen:
            count += 1
            chars += len(element)
        else:
            seen.add(element)
    return count, chars


def top_ngram_chars(word_list: Sequence[str], n: int) -> int:
    """Characters covered by all occurrences of the most frequent n-gram,
    0 when no n-gram occurs twice."""
    if len(word_list) < n:
        return 0
    counts = Counter(zip(*(word_list[k:] for k in range(n))))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0
    return count * sum(len(w) for w in gram)


def duplicated_ngram_chars(word_list: Sequence[str], n: int) -> int:
    """Characters of words that lie inside any n-gram occurring more than once
    (each word counted once, overlaps not double counted)."""
    if len(word_list) <= n:
        return 0
    first_seen: dict[tuple[str, ...], int] = {}
    covered = bytearray(len(word_list))
    any_dup = False
    for i, gram in enumerate(zip(*(word_list[k:] for k in range(n)))):
        start = first_seen.setdefault(gram, i)
        if start != i:
            any_dup = True
            covered[start : start + n] = b"\x01" * n
            covered[i : i + n] = b"\x01" * n
    if not any_dup:
        return 0
    return sum(len(w) for w, flag in zip(word_list, covered) if flag)
