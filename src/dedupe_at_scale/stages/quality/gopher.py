"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language
Models: Methods, Analysis & Insights from Training Gopher", appendix A)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from dedupe_at_scale import text as textlib
from dedupe_at_scale.stages.quality.base import Doc, RuleGroup, RuleSpec, only, ratios, safe_ratio

if TYPE_CHECKING:
    from dedupe_at_scale.stages.quality.config import GopherQualityConfig, GopherRepetitionConfig
    from dedupe_at_scale.stages.quality.measure import Counts

_NEWLINES_RE = re.compile(r"\n+")


class GopherQuality(RuleGroup):
    name = "gopher_quality"
    # Rae et al. 2021, appendix A; thresholds as published (config.py).
    RULES = (
        RuleSpec("gopher_min_words", "gopher_word_count", "min", "min_words"),
        RuleSpec("gopher_max_words", "gopher_word_count", "max", "max_words"),
        RuleSpec("gopher_min_mean_word_length", "gopher_mean_word_length", "min",
                 "min_mean_word_length"),
        RuleSpec("gopher_max_mean_word_length", "gopher_mean_word_length", "max",
                 "max_mean_word_length"),
        RuleSpec("gopher_hash_to_word_ratio", "gopher_hash_to_word_ratio", "max",
                 "max_hash_to_word_ratio"),
        RuleSpec("gopher_ellipsis_to_word_ratio", "gopher_ellipsis_to_word_ratio", "max",
                 "max_ellipsis_to_word_ratio"),
        RuleSpec("gopher_bullet_lines_ratio", "gopher_bullet_lines_ratio", "max",
                 "max_bullet_lines_ratio"),
        RuleSpec("gopher_ellipsis_lines_ratio", "gopher_ellipsis_lines_ratio", "max",
                 "max_ellipsis_lines_ratio"),
        RuleSpec("gopher_alpha_words_ratio", "gopher_alpha_words_ratio", "min",
                 "min_alpha_words_ratio"),
        RuleSpec("gopher_stop_words", "gopher_stop_words", "min", "min_stop_words"),
    )  # fmt: skip
    SETTINGS = ("enabled", "stop_words")

    def __init__(self, cfg: GopherQualityConfig):
        super().__init__(cfg)
        self.stop_words = {
            lang: frozenset(w.lower() for w in ws) for lang, ws in cfg.stop_words.items()
        }

    def measure(self, doc: Doc) -> dict[str, float]:
        words = doc.words
        n_words = len(words)
        text = doc.text
        signals: dict[str, float] = {}
        if doc.segmented:
            signals["gopher_word_count"] = n_words
            signals["gopher_mean_word_length"] = safe_ratio(sum(map(len, words)), n_words)
            signals["gopher_alpha_words_ratio"] = safe_ratio(
                # isalpha() settles most words in C; the regex handles the rest.
                sum(1 for w in words if w.isalpha() or textlib.has_alpha(w)),
                n_words,
            )
        # Symbol ratios are per word; with no words at all a symbol is all there is.
        per_word = max(n_words, 1)
        signals["gopher_hash_to_word_ratio"] = text.count("#") / per_word
        ellipses = text.count("...") + text.count("…")
        signals["gopher_ellipsis_to_word_ratio"] = ellipses / per_word
        lines = doc.lines
        signals["gopher_bullet_lines_ratio"] = safe_ratio(
            sum(1 for line in lines if line.startswith(textlib.BULLETS)), len(lines)
        )
        signals["gopher_ellipsis_lines_ratio"] = safe_ratio(
            sum(1 for line in lines if line.endswith(textlib.ELLIPSES)), len(lines)
        )
        stop_words = self.stop_words.get(doc.language or "")
        if stop_words:
            signals["gopher_stop_words"] = sum(1 for w in doc.lower_words if w in stop_words)
        return signals

    def measure_batch(self, counts: Counts) -> dict[str, np.ndarray]:
        seg, words = counts.segmented, counts["words"]
        per_word = np.maximum(words, 1).astype(np.float64)
        return {
            "gopher_word_count": only(seg, words),
            "gopher_mean_word_length": only(seg, ratios(counts["word_chars"], words)),
            "gopher_alpha_words_ratio": only(seg, ratios(counts["alpha_words"], words)),
            "gopher_hash_to_word_ratio": counts["hashes"] / per_word,
            "gopher_ellipsis_to_word_ratio": counts["ellipses"] / per_word,
            "gopher_bullet_lines_ratio": ratios(counts["bullet_lines"], counts["lines"]),
            "gopher_ellipsis_lines_ratio": ratios(counts["ellipsis_lines"], counts["lines"]),
            "gopher_stop_words": only(counts.has_stop_words, counts["stop_words"]),
        }


class GopherRepetition(RuleGroup):
    name = "gopher_repetition"
    # Rae et al. 2021, appendix A, table A1.
    RULES = (
        RuleSpec("gopher_duplicate_lines", "gopher_duplicate_lines_fraction", "max",
                 "max_duplicate_lines_fraction"),
        RuleSpec("gopher_duplicate_paragraphs", "gopher_duplicate_paragraphs_fraction", "max",
                 "max_duplicate_paragraphs_fraction"),
        RuleSpec("gopher_duplicate_line_chars", "gopher_duplicate_line_chars_fraction", "max",
                 "max_duplicate_line_chars_fraction"),
        RuleSpec("gopher_duplicate_paragraph_chars", "gopher_duplicate_paragraph_chars_fraction",
                 "max", "max_duplicate_paragraph_chars_fraction"),
        RuleSpec("gopher_top_{n}gram", "gopher_top_{n}gram_chars_fraction", "max",
                 "top_ngram_max_chars_fraction"),
        RuleSpec("gopher_duplicate_{n}grams", "gopher_duplicate_{n}gram_chars_fraction", "max",
                 "duplicate_ngram_max_chars_fraction"),
    )  # fmt: skip

    def __init__(self, cfg: GopherRepetitionConfig):
        super().__init__(cfg)
        self.top_ngrams = sorted(cfg.top_ngram_max_chars_fraction.items())
        self.dup_ngrams = sorted(cfg.duplicate_ngram_max_chars_fraction.items())

    def measure(self, doc: Doc) -> dict[str, float]:
        text = doc.text
        n_chars = len(text)
        signals: dict[str, float] = {}
        paragraphs = textlib.paragraphs(text)
        dup_paras, dup_para_chars = textlib.duplicated_elements(paragraphs)
        signals["gopher_duplicate_paragraphs_fraction"] = safe_ratio(dup_paras, len(paragraphs))
        signals["gopher_duplicate_paragraph_chars_fraction"] = safe_ratio(dup_para_chars, n_chars)
        lines = [line for line in _NEWLINES_RE.split(text) if line.strip()]
        dup_lines, dup_line_chars = textlib.duplicated_elements(lines)
        signals["gopher_duplicate_lines_fraction"] = safe_ratio(dup_lines, len(lines))
        signals["gopher_duplicate_line_chars_fraction"] = safe_ratio(dup_line_chars, n_chars)
        if not doc.segmented:
            return signals
        words = doc.lower_words
        word_chars = sum(map(len, words))
        chars = self._ngram_chars(words)
        for n, _ in self.top_ngrams:
            signals[f"gopher_top_{n}gram_chars_fraction"] = safe_ratio(chars[f"top{n}"], word_chars)
        for n, _ in self.dup_ngrams:
            signals[f"gopher_duplicate_{n}gram_chars_fraction"] = safe_ratio(
                chars[f"duplicate{n}"], word_chars
            )
        return signals

    def measure_batch(self, counts: Counts) -> dict[str, np.ndarray]:
        chars, seg = counts["chars"], counts.segmented
        word_chars = counts["lowered_word_chars"]  # n-grams are of lower-cased words
        signals = {
            "gopher_duplicate_paragraphs_fraction": ratios(
                counts["duplicate_paragraphs"], counts["paragraphs"]
            ),
            "gopher_duplicate_paragraph_chars_fraction": ratios(
                counts["duplicate_paragraph_chars"], chars
            ),
            "gopher_duplicate_lines_fraction": ratios(
                counts["duplicate_raw_lines"], counts["raw_lines"]
            ),
            "gopher_duplicate_line_chars_fraction": ratios(
                counts["duplicate_raw_line_chars"], chars
            ),
        }
        for j, n in enumerate(counts.top_ns):
            signals[f"gopher_top_{n}gram_chars_fraction"] = only(
                seg, ratios(counts.top[:, j], word_chars)
            )
        for j, n in enumerate(counts.dup_ns):
            signals[f"gopher_duplicate_{n}gram_chars_fraction"] = only(
                seg, ratios(counts.duplicate[:, j], word_chars)
            )
        return signals

    def _ngram_chars(self, words: list[str]) -> dict[str, int]:
        """The reference: the same counts, per document, in Python."""
        chars = {f"top{n}": textlib.top_ngram_chars(words, n) for n, _ in self.top_ngrams}
        repeated = True
        for n, _ in self.dup_ngrams:
            # If no n-gram repeats, no longer one can: skip the work.
            chars[f"duplicate{n}"] = textlib.duplicated_ngram_chars(words, n) if repeated else 0
            repeated = chars[f"duplicate{n}"] > 0
        return chars
