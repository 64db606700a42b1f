"""The `quality` config section: the rule groups of the quality stage (this
package), each a subsection with its thresholds, and the optional model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from dedupe_at_scale.sections import Require, Section, SpecPath, View, check_view

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


# Scripts written without spaces between words: whitespace "words" are whole
# sentences there, so word-count based rules do not apply to them.
UNSEGMENTED_LANGUAGES = ["zh", "ja", "th", "lo", "km", "my", "bo", "dz", "yue", "wuu"]


GOPHER_STOP_WORDS = {"en": ["the", "be", "to", "of", "and", "that", "have", "with"]}


class GopherQualityConfig(Section):
    enabled: bool = True
    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_hash_to_word_ratio: float | None = 0.1
    max_ellipsis_to_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    # The stop-word rule applies only to languages listed here.
    stop_words: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in GOPHER_STOP_WORDS.items()}
    )


class GopherRepetitionConfig(Section):
    enabled: bool = True
    max_duplicate_lines_fraction: float | None = 0.3
    max_duplicate_paragraphs_fraction: float | None = 0.3
    max_duplicate_line_chars_fraction: float | None = 0.2
    max_duplicate_paragraph_chars_fraction: float | None = 0.2
    # n -> max fraction of characters in the most frequent n-gram.
    top_ngram_max_chars_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    # n -> max fraction of characters in n-grams that occur more than once.
    duplicate_ngram_max_chars_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


class C4Config(Section):
    enabled: bool = True
    drop_lorem_ipsum: bool = True
    drop_curly_brace: bool = True
    # Line filters: a line failing one is removed before sentences are counted.
    remove_lines_without_terminal_punctuation: bool = True
    remove_javascript_lines: bool = True
    remove_policy_lines: bool = True
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    min_sentences: int | None = 5
    # True replaces the text of kept documents by the lines C4 keeps (the
    # original C4 cleaning); false only filters and leaves text untouched.
    clean_text: bool = False


class FineWebConfig(Section):
    enabled: bool = True
    min_line_punctuation_ratio: float | None = 0.12
    short_line_length: int = 30
    max_short_line_ratio: float | None = 0.67
    max_duplicate_line_chars_ratio: float | None = 0.01
    max_newline_to_word_ratio: float | None = 0.3


class QualityConfig(Section):
    enabled: bool = True
    # Languages whose whitespace tokens are not words (word rules skip them).
    unsegmented_languages: list[str] = Field(default_factory=lambda: list(UNSEGMENTED_LANGUAGES))
    # Add one float column per measured rule value ("q_<rule>") to kept documents.
    emit_signals: bool = True
    # A fastText model from `dedupe-at-scale train-quality`: adds quality_score
    # (P(high quality)) and rejects documents scoring below min_score.
    model: SpecPath | None = None
    min_score: float = 0.5
    # Post-training rows: the text the rules and the model read (auto: the response).
    text: View = "auto"
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)

    def check(self, job: JobConfig, require: Require) -> None:
        check_view(job, require, "quality.text", self.text)
        require(
            not self.c4.clean_text or job.input.format == "text", "quality.c4.clean_text",
            "rewrites text in place, which post-training rows cannot take; set it false",
        )  # fmt: skip
        require(0.0 <= self.min_score <= 1.0, "quality.min_score", "must be within [0, 1]")
        repetition = self.gopher_repetition
        for key in ("top_ngram_max_chars_fraction", "duplicate_ngram_max_chars_fraction"):
            for n in getattr(repetition, key):
                require(n >= 1, f"quality.gopher_repetition.{key}", "n must be >= 1")
