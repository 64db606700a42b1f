"""Lineage (`output.lineage`, on by default): where each document came
from, as `source_file` (the input file, relative to the input root) and
`source_row` (its row in that file), in data/ and rejected/. The reader
tags every row with both (internal columns); this stage makes them output
columns, first, so that every later stage's rows carry them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages.base import Batch, Stage, StageResult

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"


class LineageStage(Stage):
    name = "lineage"

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.output.lineage

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(SOURCE_FILE, pa.string()), pa.field(SOURCE_ROW, pa.int64())]

    def __call__(self, batch: Batch) -> StageResult:
        return StageResult(
            columns={
                SOURCE_FILE: batch.column(col.FILE),
                SOURCE_ROW: batch.column(col.ROW).cast(pa.int64()),
            }
        )
