"""What the write pass leaves per staged file, and many of those as one.

Each write task leaves one part per staged file (_staging/stats/): its counts
per (stage, rule, language) (accounting.block_stats), each step's summary
rows (StepOutcome.block_summary) and the report's profile
(profile.block_profile). The driver used to read every part and keep them
all until the manifest was built: 0.32 MiB of its memory a staged file on
real text with the default stages (benchmarks/block_parts.py), 320 MiB at
1,000 staged files and about 16 GiB at 50,000 (a billion documents). Parts
now fold in tasks (io/fanout.fold_files) into one part of the same shape,
whose size depends on the distinct stages, rules, languages and groups, not
on the files. A fold sums what the manifest and report sum and keeps what
they pick, in file order, so they come out as from all the parts
(tests/test_block_parts.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dedupe_at_scale.job.accounting import STAT_KEYS
from dedupe_at_scale.job.profile import fold_profiles

if TYPE_CHECKING:
    from dedupe_at_scale.job.profile import ReportSpec

STATS = "stats"
SUMMARY = "summary"
PROFILE = "__profile"  # the block's histograms for the report, among the summaries


def fold_rows(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows with the same values of `keys` as one row, each other field
    summed; in the order in which each key first appears. A field that is
    not a number must be a key: summed, two names would run together."""
    folded: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        into = folded.setdefault(tuple(row[k] for k in keys), {})
        for name, value in row.items():
            if name in keys:
                into[name] = value
            elif isinstance(value, (int, float)):
                into[name] = into.get(name, 0) + value
            else:
                raise TypeError(f"{name!r} = {value!r} is not a number to sum: name it a key "
                                "(StepOutcome.block_summary_keys)")  # fmt: skip
    return list(folded.values())


@dataclass(frozen=True)
class PartFold:
    """Folds parts ({STATS: rows, SUMMARY: {name: rows}}) into one:
    stats by STAT_KEYS, a step's summary rows by its `summary_keys[name]`
    (StepOutcome.block_summary_keys), the report's profiles by `report`.
    Its own results fold again: fold([fold(a), fold(b)]) == fold(a + b)."""

    summary_keys: dict[str, tuple[str, ...]]
    report: ReportSpec | None = None

    def __call__(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        summaries: dict[str, list[dict[str, Any]]] = {}
        for part in parts:
            for name, rows in part[SUMMARY].items():
                summaries.setdefault(name, []).extend(rows)
        return {
            STATS: fold_rows((row for part in parts for row in part[STATS]), STAT_KEYS),
            SUMMARY: {name: self._fold(name, rows) for name, rows in summaries.items()},
        }

    def _fold(self, name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if name != PROFILE:
            return fold_rows(rows, self.summary_keys[name])
        if self.report is None:
            raise ValueError("profiles to fold, but no report spec")
        return [fold_profiles(rows, self.report)]
