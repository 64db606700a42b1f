"""A toy per-document stage: reject documents containing a marker word."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.stages.base import Batch, Rejections, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

MARKER = "xyzzymarker"


class MarkerStage(Stage):
    name = stage = "marker"

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return True

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return []

    def __call__(self, batch: Batch) -> StageResult:
        active = pc.is_null(batch.table.column("__dds_stage")).to_numpy(zero_copy_only=False)
        has = pc.match_substring(batch.text_array(), MARKER).to_numpy(zero_copy_only=False)
        mask = active & has
        n = batch.num_rows
        return StageResult(
            rejected=Rejections(
                mask,
                pa.array(["marker_word"] * n, pa.string()),
                pa.nulls(n, pa.float64()),
                pa.array([f"marker_word: contains {MARKER}"] * n, pa.string()),
            )
        )
