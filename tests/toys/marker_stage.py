"""A toy per-document stage with a config section of its own (`marker`):
reject documents containing a word."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.stages.base import Batch, Rejections, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

MARKER = "xyzzymarker"


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
        return []

    def __call__(self, batch: Batch) -> StageResult:
        word = self.cfg.marker.word
        active = pc.is_null(batch.table.column("__dds_stage")).to_numpy(zero_copy_only=False)
        has = pc.match_substring(batch.text_array(), word).to_numpy(zero_copy_only=False)
        mask = active & has
        n = batch.num_rows
        return StageResult(
            rejected=Rejections(
                mask,
                pa.array(["marker_word"] * n, pa.string()),
                pa.nulls(n, pa.float64()),
                pa.array([f"marker_word: contains {word}"] * n, pa.string()),
            )
        )
