"""A toy global step with a config section of its own (`longest`): drop the
longest kept document of each language, list the dropped ones in a directory
it publishes (longest/), and show their lengths in the report."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import ReportBars, ReportSection
from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.steps.base import (
    Decision,
    GlobalStep,
    StagedFile,
    StagedView,
    StepOutcome,
    StepOutput,
    decision_paths,
)

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.steps.base import FinishedRows

LONGEST = "longest"
SCHEMA = pa.schema([("id", pa.string()), ("language", pa.string()), ("chars", pa.int64())])


class LongestConfig(Section):
    enabled: bool = True
    # Only documents at least this long are dropped.
    min_chars: int = 0

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.min_chars >= 0, "longest.min_chars", "must be 0 or more")


class DropLongest(GlobalStep):
    name = stage = section = LONGEST
    Config = LongestConfig
    publishes = (LONGEST,)

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.longest.enabled

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema]:
        return {LONGEST: SCHEMA}

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        return [f"Longest: {section['dropped']} dropped (see longest/)."]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        chars = section["chars"]
        bars = ReportBars("plot-longest", "Length of the document dropped, per language",
                          [(None, list(chars), list(chars.values()), "accent")],
                          "language", "characters", x_category=True)  # fmt: skip
        return [ReportSection(LONGEST, "Longest documents", plots=(bars,))]

    @staticmethod
    def trace_lines(output: FinishedRows, doc_id: str, rows: list[dict[str, Any]]) -> list[str]:
        found = output.find(LONGEST, "id", doc_id)
        return [f"  longest: dropped, {found[0]['chars']} characters"] if found else []

    def run(self, view: StagedView) -> StepOutcome:
        text = view.cfg.input.text_column
        best: dict[str, tuple[int, int]] = {}  # language -> (length, -uid)
        for part in ray.get([_longest.remote(f, text) for f in view.files]):
            for language, key in part.items():
                best[language] = max(best.get(language, key), key)
        chosen = {lang: key for lang, key in best.items() if key[0] >= view.cfg.longest.min_chars}
        uids = sorted(-neg for _, neg in chosen.values())
        paths = decision_paths(view, LONGEST)
        id_column = view.cfg.input.id_column
        ray.get([_publish.remote(f, text, id_column, uids, p) for f, p in zip(view.files, paths)])
        report = {"dropped": len(uids), "chars": {k: v[0] for k, v in sorted(chosen.items())}}
        return StepOutcome(
            report,
            Decision(functools.partial(_apply, uids=uids)),
            output=StepOutput(LONGEST, paths, list(SCHEMA.names)),
        )


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


@ray.remote
def _publish(staged: StagedFile, text: str, id_column: str, uids: list[int], path: str) -> None:
    """This file's dropped documents, written to `path` (empty if none)."""
    kept = staged.read_kept([id_column, text, col.LANGUAGE])
    kept = kept.filter(pa.array(np.isin(kept.column(col.UID).to_numpy(), uids)))
    out = pa.table([pc.cast(kept.column(id_column), pa.string()), kept.column(col.LANGUAGE),
                    pc.cast(pc.utf8_length(kept.column(text)), pa.int64())], schema=SCHEMA)  # fmt: skip
    pq.write_table(out, path, filesystem=staged.location.arrow_fs)


def _apply(index: int, table: pa.Table, uids: list[int]) -> pa.Table:
    rows = np.isin(table.column(col.UID).to_numpy(), uids)
    rows &= pc.is_null(table.column(col.STAGE)).to_numpy(zero_copy_only=False)
    n = table.num_rows
    rule = pa.array(["longest_in_language"] * n, pa.string())
    return col.mark_rejected(table, rows, "longest", rule, rule)
