"""Accounting: every input document is counted once, as kept or rejected,
and the shards hold exactly those rows; otherwise nothing is committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.stages.tokens import N_TOKENS
from dedupe_at_scale.stages.tokens.estimate import TOKENS  # n_tokens summed
from dedupe_at_scale.steps.mixture import COPIES

if TYPE_CHECKING:
    from dedupe_at_scale.io.inputs import InputFile


class AccountingError(RuntimeError):
    """Documents were lost or counted twice; the output is not committed."""


STAT_KEYS = [col.STAGE, col.RULE, col.LANGUAGE]
EXTRA_COPIES = "extra_copies"
EXTRA_COPY_TOKENS = "extra_copy_tokens"


def block_stats(table: pa.Table) -> pa.Table:
    """Counts and busy seconds per (stage, rule, language) within one block."""
    keys = {k: pc.fill_null(table.column(k), "") for k in STAT_KEYS}
    summed = {
        n: pc.fill_null(table.column(n), 0)
        for n in table.column_names
        if n.startswith((col.SECONDS_PREFIX, col.COUNT_PREFIX))
    }
    extra = None
    if COPIES in table.column_names:
        extra = np.maximum(table.column(COPIES).to_numpy() - 1, 0)
        summed[EXTRA_COPIES] = pa.array(extra)
    if N_TOKENS in table.column_names:
        tokens = pc.fill_null(table.column(N_TOKENS), 0)
        summed[TOKENS] = tokens
        if extra is not None:
            summed[EXTRA_COPY_TOKENS] = pa.array(tokens.to_numpy() * extra)
    grouped = pa.table({**keys, **summed}).group_by(STAT_KEYS)
    result = grouped.aggregate([(STAT_KEYS[0], "count")] + [(n, "sum") for n in summed])
    return result.rename_columns(
        [
            c.replace(f"{STAT_KEYS[0]}_count", "count").removesuffix("_sum")
            for c in result.column_names
        ]
    )


def quarantine_stats(files: list[InputFile]) -> list[dict[str, Any]]:
    """Counts of the files quarantined whole, in the shape of block stats."""
    return [
        {col.STAGE: "input", col.RULE: f.problem[0], col.LANGUAGE: "", "count": f.entries}
        for f in files
        if f.problem is not None
    ]


def check_accounting(
    files: list[InputFile],
    stats: list[dict[str, Any]],
    data_shards: list[dict[str, Any]],
    rejected_shards: list[dict[str, Any]],
) -> None:
    total = sum(f.entries for f in files)
    kept = sum(s["count"] for s in stats if not s[col.STAGE])
    rejected = sum(s["count"] for s in stats if s[col.STAGE])
    # Mixture upsampling writes some kept documents more than once.
    written_kept = sum(s["rows"] for s in data_shards) - sum(s.get(EXTRA_COPIES, 0) for s in stats)
    written_rejected = sum(s["rows"] for s in rejected_shards)
    problems = []
    if kept + rejected != total:
        problems.append(f"input has {total} documents but {kept} kept + {rejected} rejected")
    if written_kept != kept:
        problems.append(f"data/ holds {written_kept} documents, expected {kept}")
    if written_rejected != rejected:
        problems.append(f"rejected/ holds {written_rejected} rows, expected {rejected}")
    if problems:
        raise AccountingError("output not committed: " + "; ".join(problems))
