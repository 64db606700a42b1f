"""FineWeb's own line-level filters (Penedo et al. 2024, "The FineWeb Datasets")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedupe_at_scale import text as textlib
from dedupe_at_scale.stages.quality.base import Doc, RuleGroup, RuleSpec, only, ratios, safe_ratio

if TYPE_CHECKING:
    from dedupe_at_scale.stages.quality.measure import Counts


class FineWeb(RuleGroup):
    name = "fineweb"

    # Penedo et al. 2024, section 3.
    RULES = (
        RuleSpec("fineweb_line_punctuation", "fineweb_line_punctuation_ratio", "min",
                 "min_line_punctuation_ratio"),
        RuleSpec("fineweb_short_lines", "fineweb_short_line_ratio", "max", "max_short_line_ratio"),
        RuleSpec("fineweb_duplicate_line_chars", "fineweb_duplicate_line_chars_ratio", "max",
                 "max_duplicate_line_chars_ratio"),
        RuleSpec("fineweb_newline_to_word_ratio", "fineweb_newline_to_word_ratio", "max",
                 "max_newline_to_word_ratio"),
    )  # fmt: skip
    SETTINGS = ("enabled", "short_line_length")

    def measure(self, doc: Doc) -> dict[str, float]:
        lines = doc.lines
        n_lines = len(lines)
        signals = {
            "fineweb_line_punctuation_ratio": safe_ratio(
                sum(1 for line in lines if line.endswith(textlib.TERMINAL_PUNCTUATION)), n_lines
            ),
            "fineweb_short_line_ratio": safe_ratio(
                sum(1 for line in lines if len(line) <= self.cfg.short_line_length), n_lines
            ),
            "fineweb_duplicate_line_chars_ratio": safe_ratio(
                textlib.duplicated_elements(lines)[1], len(doc.text.replace("\n", ""))
            ),
        }
        if doc.segmented:
            signals["fineweb_newline_to_word_ratio"] = safe_ratio(
                doc.text.count("\n"), len(doc.words)
            )
        return signals

    def measure_batch(self, counts: Counts) -> dict[str, np.ndarray]:
        lines = counts["lines"]
        return {
            "fineweb_line_punctuation_ratio": ratios(counts["terminal_lines"], lines),
            "fineweb_short_line_ratio": ratios(counts["short_lines"], lines),
            "fineweb_duplicate_line_chars_ratio": ratios(
                counts["duplicate_line_chars"], counts["chars"] - counts["newlines"]
            ),
            "fineweb_newline_to_word_ratio": only(
                counts.segmented, ratios(counts["newlines"], counts["words"])
            ),
        }
