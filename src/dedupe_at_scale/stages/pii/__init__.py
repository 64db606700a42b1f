"""`pii` section: e-mail addresses, IP addresses, phone numbers, credit-card
numbers, IBANs and secrets, found by one Hyperscan pass over each batch
(engine.py) and checked as detectors.py says. Per type the action is redact
(a typed placeholder; the redacted text is what dedup and data/ see), drop
(rule pii_<type>) or count. A document with more than
max_hits_per_1000_words hits is a list of contacts: dropped (pii_density).
Detected values are never written anywhere: reasons name types and counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages.base import Batch, Stage, StageResult, rejections
from dedupe_at_scale.stages.pii.config import PII_TYPES
from dedupe_at_scale.stages.pii.engine import Engine

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.stages.pii.detectors import Found

REDACTED = "pii_redacted"
CHARS_PER_WORD = 5  # the density's floor on words: characters / 5


def redact(
    text: str, found: list[Found], placeholders: dict[str, str], kinds: set[str]
) -> tuple[str, int]:
    """`text` with the matches of `kinds` replaced by their placeholders."""
    parts, at, count = [], 0, 0
    for f in found:
        if f.kind in kinds:
            parts += [text[at : f.start], placeholders.get(f.kind, f"<{f.kind.upper()}>")]
            at, count = f.end, count + 1
    return "".join(parts) + text[at:], count


class PiiStage(Stage):
    name = stage = "pii"

    @staticmethod
    def report(cfg: JobConfig, counters: Mapping[str, int], rules: Mapping[str, int]) -> dict:
        """Hits per type (whatever their action) and documents dropped per
        rule; never a detected value."""
        if not cfg.pii.enabled:
            return {"enabled": False}
        hits = {k: int(counters.get(f"pii_{k}", 0)) for k in cfg.pii.detect}
        return {"enabled": True, "hits": hits, "documents_dropped": dict(rules)}

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        hits = ", ".join(f"{k} {n}" for k, n in section["hits"].items() if n) or "none"
        dropped = sum(section["documents_dropped"].values())
        return [f"PII: {hits} found; {dropped} documents dropped."]

    def __init__(self, cfg: JobConfig):
        super().__init__(cfg)
        self.section = cfg.pii
        self.engine = Engine(cfg.pii)
        self.action = {kind: cfg.pii.actions.get(kind, "redact") for kind in PII_TYPES}

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.pii.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        counters = [pa.field(col.COUNT_PREFIX + "pii_" + k, pa.int32()) for k in cfg.pii.detect]
        return [pa.field(REDACTED, pa.int32()), *counters]

    def __call__(self, batch: Batch) -> StageResult:
        n = batch.num_rows
        texts = batch.text_array()
        found = self.engine.find(texts, batch.active())
        redacted = np.zeros(n, np.int32)
        hits = {k: np.zeros(n, np.int32) for k in self.section.detect}
        rows, rules, values, reasons = [], [], [], []
        new_texts: list[str] | None = None
        redacting = {k for k, a in self.action.items() if a == "redact"}
        for row, matches in sorted(found.items()):
            per_kind: dict[str, int] = {}
            for f in matches:
                per_kind[f.kind] = per_kind.get(f.kind, 0) + 1
            for kind, count in per_kind.items():
                hits[kind][row] = count
            dropping = [
                k for k in self.section.detect if per_kind.get(k) and self.action[k] == "drop"
            ]
            text = texts[row].as_py()
            # Scripts without spaces (zh, ja, th) have few whitespace "words".
            words = max(len(text.split()), len(text) // CHARS_PER_WORD)
            density = 1000 * len(matches) / max(words, 1)
            limit = self.section.max_hits_per_1000_words
            if dropping:
                kind = dropping[0]
                rows.append(row), rules.append(f"pii_{kind}"), values.append(float(per_kind[kind]))
                reasons.append(f"pii_{kind}: {per_kind[kind]} found (action drop)")
            elif limit is not None and density > limit:
                rows.append(row), rules.append("pii_density"), values.append(density)
                reasons.append(
                    f"pii_density: {len(matches)} PII matches in {words} words "
                    f"({density:.1f} per 1,000 > {limit:g})"
                )
            elif redacting & per_kind.keys():  # text rows: config refuses redact otherwise
                if new_texts is None:
                    new_texts = batch.texts(range(n))
                new_texts[row], redacted[row] = redact(
                    new_texts[row], matches, self.section.placeholders, redacting
                )
        columns = {REDACTED: pa.array(redacted)}
        columns.update({col.COUNT_PREFIX + "pii_" + k: pa.array(v) for k, v in hits.items()})
        return StageResult(
            columns=columns,
            rejected=rejections(n, rows, rules, values, reasons),
            text=pa.array(new_texts, pa.string()) if new_texts is not None else None,
        )
