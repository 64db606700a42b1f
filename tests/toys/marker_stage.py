"""A toy per-document stage with a config section of its own (`marker`):
reject documents containing a word; count them, in the manifest, the summary
and a plot of the report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import Distribution, ReportBars, ReportSection
from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.stages.base import Batch, Rejections, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

MARKER = "xyzzymarker"
HITS = col.COUNT_PREFIX + "marker_hits"  # a counter: summed over the run


class MarkerConfig(Section):
    enabled: bool = True
    # Documents containing this word are rejected (rule marker_word).
    word: str = MARKER

    def check(self, job: JobConfig, require: Require) -> None:
        require(bool(self.word.strip()), "marker.word", "must not be empty")


class MarkerStage(Stage):
    name = stage = section = "marker"
    Config = MarkerConfig

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.marker.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(HITS, pa.int32())]

    @staticmethod
    def report(cfg: JobConfig, counters: Mapping[str, int], rules: Mapping[str, int]) -> dict:
        return {"word": cfg.marker.word, "documents_holding_it": counters.get("marker_hits", 0)}

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        n, word = section["documents_holding_it"], section["word"]
        return [f"Marker: {n} documents held {word!r}."]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        bars = ReportBars("plot-marker", "Documents holding the word",
                          [(None, [section["word"]], [section["documents_holding_it"]], "accent")],
                          "word", "documents", x_category=True)  # fmt: skip
        return [ReportSection("marker", "Marker", plots=(bars,))]

    @staticmethod
    def distributions(cfg: JobConfig) -> list[Distribution]:
        # A histogram per document, kept against rejected (plot-marker_hits).
        return [Distribution("marker_hits", HITS, "Marker: hits per document", unit="hits")]

    def __call__(self, batch: Batch) -> StageResult:
        word = self.cfg.marker.word
        active = pc.is_null(batch.table.column("__dds_stage")).to_numpy(zero_copy_only=False)
        has = pc.match_substring(batch.text_array(), word).to_numpy(zero_copy_only=False)
        mask = active & has
        n = batch.num_rows
        return StageResult(
            columns={HITS: pa.array(has.astype("int32"))},
            rejected=Rejections(
                mask,
                pa.array(["marker_word"] * n, pa.string()),
                pa.nulls(n, pa.float64()),
                pa.array([f"marker_word: contains {word}"] * n, pa.string()),
            ),
        )
