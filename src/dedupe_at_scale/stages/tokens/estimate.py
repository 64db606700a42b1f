"""Tokens of the rows `tokens.count: kept` does not count (rejected by a
per-document stage, less a sample of them): their text bytes times the tokens
per byte of the sampled rows the same stage and rule rejected (of the same
stage where the rule has none sampled, of all counted rejected rows where the
stage has none). The tokens per byte of kept text is no guide: on the sample the
rejected rows have twice as many tokens per byte. benchmarks/token_estimate.py
measures the error per stage."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dedupe_at_scale import columns as col

TOKENS = "tokens"  # n_tokens summed in a block-stats row (job/accounting.py)
REJECTED_SAMPLE = 8  # one rejected row in 8 is counted, by its text's hash


class TokenEstimate:
    """Built from the block-stats rows of a whole run (stage, rule and
    language, with their summed counters)."""

    def __init__(self, stats: list[dict[str, Any]]):
        tokens: Counter = Counter()
        counted: Counter = Counter()
        for row in stats:
            if row[col.STAGE]:
                for key in ((row[col.STAGE], row[col.RULE]), row[col.STAGE], ""):
                    tokens[key] += int(row.get(TOKENS, 0))
                    counted[key] += int(row.get(col.TOKENS_COUNTED_BYTES, 0))
        self.per_byte = {key: tokens[key] / n for key, n in counted.items() if n}
        self.tokens = 0  # estimated so far, over the rows passed to tokens_of()
        self.bytes = 0

    def tokens_of(self, row: dict[str, Any]) -> int:
        """The row's tokens: counted, plus the estimate for its uncounted bytes."""
        uncounted = int(row.get(col.TOKENS_UNCOUNTED_BYTES, 0))
        estimate = 0
        if uncounted:
            stage = row[col.STAGE]
            keys = ((stage, row[col.RULE]), stage, "")
            ratio = next((self.per_byte[k] for k in keys if k in self.per_byte), 0.0)
            estimate = round(uncounted * ratio)
            self.tokens += estimate
            self.bytes += uncounted
        return int(row.get(TOKENS, 0)) + estimate

    def section(self) -> dict[str, Any]:
        """The manifest's account of what was estimated."""
        sampled = self.per_byte.get("")
        return {
            "tokens": self.tokens,
            "from_bytes": self.bytes,
            "sampled": f"1 in {REJECTED_SAMPLE}",
            "tokens_per_byte_rejected": None if sampled is None else round(sampled, 4),
        }
