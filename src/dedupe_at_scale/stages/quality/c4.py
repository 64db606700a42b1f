"""C4 heuristics (Raffel et al. 2020, "Exploring the Limits of Transfer Learning").

C4 removes bad lines (no terminal punctuation, too few words, mentions of
javascript, cookie and policy notices, absurdly long words), then drops the page
if too few sentences survive, or if it holds "lorem ipsum" or a curly brace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedupe_at_scale import text as textlib
from dedupe_at_scale.stages.quality.base import Doc, RuleGroup, RuleSpec

if TYPE_CHECKING:
    from dedupe_at_scale.stages.quality.measure import Counts

LOREM_IPSUM = "lorem ipsum"
JAVASCRIPT = "javascript"

POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class C4(RuleGroup):
    name = "c4"

    # Raffel et al. 2020, section 2.2: page-level rules (line rules are SETTINGS).
    RULES = (
        RuleSpec("c4_lorem_ipsum", "c4_lorem_ipsum", "max", "drop_lorem_ipsum"),
        RuleSpec("c4_curly_brace", "c4_curly_brace", "max", "drop_curly_brace"),
        RuleSpec("c4_min_sentences", "c4_sentences", "min", "min_sentences"),
    )
    SETTINGS = (
        "enabled",
        "remove_lines_without_terminal_punctuation",
        "remove_javascript_lines",
        "remove_policy_lines",
        "min_words_per_line",
        "max_word_length",
        "clean_text",
    )

    def kept_lines(self, doc: Doc) -> list[str]:
        """The lines C4 keeps; word-count line rules skip unsegmented scripts."""
        cfg = self.cfg
        kept = []
        for line in doc.lines:
            if cfg.remove_lines_without_terminal_punctuation and (
                not line.endswith(textlib.TERMINAL_PUNCTUATION) or line.endswith(textlib.ELLIPSES)
            ):
                continue
            lower = line.lower()
            if cfg.remove_javascript_lines and JAVASCRIPT in lower:
                continue
            if cfg.remove_policy_lines and any(p in lower for p in POLICY_PHRASES):
                continue
            if doc.segmented or cfg.max_word_length is not None:
                line_words = line.split()
                if (
                    doc.segmented
                    and cfg.min_words_per_line is not None
                    and len(line_words) < cfg.min_words_per_line
                ):
                    continue
                if cfg.max_word_length is not None and any(
                    len(w) > cfg.max_word_length for w in line_words
                ):
                    continue
            kept.append(line)
        return kept

    def measure(self, doc: Doc) -> dict[str, float]:
        lower = doc.text.lower()
        return {
            "c4_lorem_ipsum": float(LOREM_IPSUM in lower),
            "c4_curly_brace": float("{" in doc.text),
            "c4_sentences": len(textlib.sentences("\n".join(self.kept_lines(doc)))),
        }

    def measure_batch(self, counts: Counts) -> dict[str, np.ndarray]:
        return {
            "c4_lorem_ipsum": counts["lorem_ipsum"].astype(np.float64),
            "c4_curly_brace": (counts["curly_braces"] > 0).astype(np.float64),
            "c4_sentences": counts["c4_sentences"].astype(np.float64),
        }

    @property
    def cleans(self) -> bool:
        return bool(self.cfg.clean_text)

    def clean(self, doc: Doc) -> str | None:
        return "\n".join(self.kept_lines(doc)) if self.cfg.clean_text else None
