"""A toy global step: drop the longest kept document of each language."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.steps.base import Decision, GlobalStep, StagedFile, StagedView, StepOutcome

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig


class DropLongest(GlobalStep):
    name = stage = "longest"

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return True

    def run(self, view: StagedView) -> StepOutcome:
        text = view.cfg.input.text_column
        best: dict[str, tuple[int, int]] = {}  # language -> (length, -uid)
        for part in ray.get([_longest.remote(f, text) for f in view.files]):
            for language, key in part.items():
                best[language] = max(best.get(language, key), key)
        uids = sorted(-neg for _, neg in best.values())
        return StepOutcome({"dropped": len(uids)}, Decision(functools.partial(_apply, uids=uids)))


@ray.remote
def _longest(staged: StagedFile, text: str) -> dict[str, tuple[int, int]]:
    kept = staged.read_kept([text, col.LANGUAGE])
    lengths = pc.utf8_length(kept.column(text)).to_numpy()
    out: dict[str, tuple[int, int]] = {}
    for language, length, uid in zip(
        kept.column(col.LANGUAGE).to_pylist(), lengths, kept.column(col.UID).to_numpy()
    ):
        key = (int(length), -int(uid))  # ties: the first in input order
        out[language or ""] = max(out.get(language or "", key), key)
    return out


def _apply(index: int, table: pa.Table, uids: list[int]) -> pa.Table:
    rows = np.isin(table.column(col.UID).to_numpy(), uids)
    rows &= pc.is_null(table.column(col.STAGE)).to_numpy(zero_copy_only=False)
    n = table.num_rows
    rule = pa.array(["longest_in_language"] * n, pa.string())
    return col.mark_rejected(table, rows, "longest", rule, rule)
