"""The single-pass engine: every detector's candidate pattern compiled into
one Hyperscan database, scanned once over a batch's whole UTF-8 buffer (the
Arrow string data, no copy). A candidate tells which documents and which
detectors can match at all; only those run the reference patterns
(detectors.find_pii), so the result is the reference's by construction,
at the scanner's speed on the documents without PII."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from dedupe_at_scale.stages.base import string_buffers
from dedupe_at_scale.stages.pii.detectors import Detector, Found, active_detectors, find_pii

if TYPE_CHECKING:
    from dedupe_at_scale.stages.pii.config import PiiConfig


class Engine:
    def __init__(self, cfg: PiiConfig):
        import hyperscan

        self.cfg = cfg
        self.detectors = active_detectors(cfg)
        self.database = None
        if self.detectors:
            self.database = hyperscan.Database()
            self.database.compile(
                expressions=[d.candidate.encode() for d in self.detectors],
                ids=list(range(len(self.detectors))),
                elements=len(self.detectors),
                flags=[0] * len(self.detectors),
            )

    def candidates(self, texts: pa.Array) -> dict[int, set[int]]:
        """Row -> detectors whose candidate matched (ending) in that row."""
        if self.database is None or len(texts) == 0:
            return {}
        data, offsets = string_buffers(texts)
        start = int(offsets[0])
        ends: list[tuple[int, int]] = []

        def on_match(detector: int, _from: int, to: int, _flags: int, _context: object) -> None:
            ends.append((detector, to))

        # A numpy view of Arrow's buffer: Hyperscan reads it in place.
        self.database.scan(data[start : int(offsets[-1])], match_event_handler=on_match)
        if not ends:
            return {}
        which = np.array([d for d, _ in ends], np.int64)
        at = np.array([t for _, t in ends], np.int64) + start
        # A match ends in the row whose bytes hold its last byte.
        rows = np.searchsorted(offsets, at, side="left") - 1
        found: dict[int, set[int]] = {}
        for row, detector in set(zip(rows.tolist(), which.tolist())):
            found.setdefault(row, set()).add(detector)
        return found

    def find(self, texts: pa.Array, rows: list[int] | np.ndarray) -> dict[int, list[Found]]:
        """PII per row among `rows`, as detectors.find_pii finds it."""
        wanted = set(int(r) for r in rows)
        result: dict[int, list[Found]] = {}
        for row, which in self.candidates(texts).items():
            if row not in wanted:
                continue
            detectors: list[Detector] = [self.detectors[i] for i in sorted(which)]
            found = find_pii(texts[row].as_py(), self.cfg, detectors)
            if found:
                result[row] = found
        return result
