"""`consistency` section: contradictions among rows whose prompts dedup put
in one cluster (exact or near duplicates; preference and reward data).

  preference  rows ranking the same two responses both ways (A > B and B > A;
              responses compared as dedup normalizes them)
  reward      rows scoring the same response further apart than max_score_gap

The check (ConflictCheck, the step's `cluster_check`) runs inside dedup's
keep task, where each cluster's rows meet, so that conflicting rows are set
aside before a cluster's survivor is chosen (steps/dedup/keep.py); it writes
a conflicts file per partition. The step registered here publishes those
files as OUT/conflicts/ and the manifest section. With `report` nothing is
dropped; `drop_all` rejects every row of a conflict; `keep_majority` keeps
the side with more rows (no side on a tie) and rejects the rest, all with
stage "consistency".
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import map_files
from dedupe_at_scale.io.output import parquet_sizes
from dedupe_at_scale.io.storage import read_parquet
from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.steps.base import (
    ClusterCheck,
    ClusterVerdict,
    GlobalStep,
    StagedView,
    StepOutcome,
    StepOutput,
)

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.storage import Location

CONFLICTS = "conflicts"
FILE_PREFIX = "conflicts-"
RULES = {"preference": "preference_conflict", "reward": "score_conflict"}
CONFLICT_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.string()),  # the id of the cluster's first row by the keep rule
        ("kind", pa.string()),  # preference or score
        ("ids", pa.list_(pa.string())),  # every row of the conflict
        ("dropped_ids", pa.list_(pa.string())),  # those the action rejected
        ("detail", pa.string()),
    ]
)


class ConsistencyConfig(Section):
    """Contradictions among rows whose prompts dedup clustered together
    (preference and reward data; steps/consistency.py)."""

    enabled: bool = True
    # report: list conflicts in conflicts/ and drop nothing for them;
    # drop_all: reject every row of a conflict; keep_majority: reject the
    # rows that disagree with the majority (all of them on a tie).
    action: Literal["report", "drop_all", "keep_majority"] = "report"
    # Reward rows for one (prompt, response) whose scores differ by more.
    max_score_gap: float = 1.0

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.max_score_gap >= 0, "consistency.max_score_gap", "must be >= 0")


def applies(cfg: JobConfig) -> bool:
    return cfg.consistency.enabled and cfg.dedup.enabled and cfg.input.format in RULES


def member_columns(cfg: JobConfig) -> list[str]:
    """The staged columns resolve() compares."""
    if not applies(cfg):
        return []
    second = col.REJECTED_KEY if cfg.input.format == "preference" else col.SCORE
    return [col.RESPONSE_KEY, second]


def resolve(members: pa.Table, cfg: JobConfig) -> ClusterVerdict:
    """Conflicts among `members` (cluster rows sorted by label, then the
    keep rule): which rows to reject and a row per conflict."""
    n = members.num_rows
    kind = cfg.input.format
    excluded = np.zeros(n, dtype=bool)
    rows: list[dict[str, Any]] = []
    label = members.column("label").to_numpy()
    ids = members.column("id").to_pylist()
    first = np.flatnonzero(np.r_[True, label[1:] != label[:-1]]) if n else np.zeros(0, np.int64)
    bounds = np.r_[first, n]
    key = members.column(col.RESPONSE_KEY).to_numpy()
    other = members.column(member_columns(cfg)[1]).to_numpy(zero_copy_only=False)
    find = _preference_conflicts if kind == "preference" else _score_conflicts
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if hi - lo < 2:
            continue
        for involved, dropped, detail in find(key[lo:hi], other[lo:hi], cfg.consistency):
            involved = [lo + i for i in involved]
            dropped = [lo + i for i in dropped]
            excluded[dropped] = True
            rows.append(
                {
                    "cluster_id": ids[lo],
                    "kind": "preference" if kind == "preference" else "score",
                    "ids": [ids[i] for i in involved],
                    "dropped_ids": [ids[i] for i in dropped],
                    "detail": detail,
                }
            )
    table = pa.Table.from_pylist(rows, schema=CONFLICT_SCHEMA)
    return ClusterVerdict(excluded, RULES[kind], table)


def _preference_conflicts(
    chosen: np.ndarray, rejected: np.ndarray, cfg: ConsistencyConfig
) -> list[tuple[list[int], list[int], str]]:
    """Per pair of responses ranked both ways: (rows, rows to drop, detail)."""
    votes: dict[tuple[int, int], dict[bool, list[int]]] = defaultdict(lambda: {True: [], False: []})
    for i, (a, b) in enumerate(zip(chosen.tolist(), rejected.tolist())):
        votes[(min(a, b), max(a, b))][a < b].append(i)
    found = []
    for sides in votes.values():
        one, two = sides[True], sides[False]
        if not one or not two:
            continue
        rows = sorted(one + two)
        if cfg.action == "drop_all" or (cfg.action == "keep_majority" and len(one) == len(two)):
            dropped = rows
        elif cfg.action == "keep_majority":
            dropped = sorted(two if len(one) > len(two) else one)
        else:
            dropped = []
        detail = f"{len(one)} row(s) prefer one response, {len(two)} the other"
        found.append((rows, dropped, detail))
    return found


def _score_conflicts(
    response: np.ndarray, score: np.ndarray, cfg: ConsistencyConfig
) -> list[tuple[list[int], list[int], str]]:
    """Per response scored further apart than max_score_gap."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(response.tolist()):
        groups[key].append(i)
    found = []
    gap = cfg.max_score_gap
    for rows in groups.values():
        scores = score[rows].astype(np.float64)
        if len(rows) < 2 or scores.max() - scores.min() <= gap:
            continue
        if cfg.action == "drop_all":
            dropped = rows
        elif cfg.action == "keep_majority":
            agree = _largest_agreeing(scores, gap)
            majority = len(agree) * 2 > len(rows)
            dropped = [r for j, r in enumerate(rows) if not majority or j not in agree]
        else:
            dropped = []
        shown = ", ".join(f"{s:g}" for s in scores)
        detail = f"scores {shown} differ by {scores.max() - scores.min():g} > {gap:g}"
        found.append((rows, sorted(dropped), detail))
    return found


def _largest_agreeing(scores: np.ndarray, gap: float) -> set[int]:
    """Positions of the most scores lying within `gap` of each other (the
    lowest such window on a tie)."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    best = (0, 0)
    for start in range(len(ranked)):
        end = int(np.searchsorted(ranked, ranked[start] + gap, side="right"))
        if end - start > best[1] - best[0]:
            best = (start, end)
    return set(order[best[0] : best[1]].tolist())


class ConflictCheck(ClusterCheck):
    """What dedup's keep task runs on each cluster (see the module docstring)."""

    stage = "consistency"
    rules = tuple(RULES.values())
    prefix = FILE_PREFIX
    applies = staticmethod(applies)
    columns = staticmethod(member_columns)
    resolve = staticmethod(resolve)

    @staticmethod
    def reason(rule: pa.Array, cluster: pa.Array) -> pa.Array:
        why = pc.binary_join_element_wise(rule, ": contradicts rows of cluster ", cluster, "")
        return pc.binary_join_element_wise(why, f" (see {CONFLICTS}/)", "")


class Consistency(GlobalStep):
    """Publishes the conflicts dedup's keep tasks found (see the module
    docstring); its rejections were applied with dedup's decision."""

    name = stage = ConflictCheck.stage
    publishes = (CONFLICTS,)
    cluster_check = ConflictCheck

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        kinds = ", ".join(f"{k} {n}" for k, n in section["by_kind"].items()) or "none"
        return [
            f"Consistency: {section['conflicts']} conflicts ({kinds}) among {section['rows_in_conflicts']} "
            f"rows; action {section['action']}: {section['rows_dropped']} rows dropped (see conflicts/)."
        ]

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return applies(cfg)

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema]:
        return {CONFLICTS: CONFLICT_SCHEMA}

    @staticmethod
    def idle_report(cfg: JobConfig) -> dict[str, Any]:
        if not applies(cfg):
            return {"enabled": False}
        return _finish({"action": cfg.consistency.action, "conflicts": 0, "by_kind": {},
                        "rows_in_conflicts": 0}, [], {})  # fmt: skip

    def run(self, view: StagedView) -> StepOutcome:
        sizes = {
            p: n for p, n in parquet_sizes(view.location, view.decisions_dir).items()
            if posixpath.basename(p).startswith(FILE_PREFIX)
        }  # fmt: skip
        # A file per dedup partition: read in tasks (io/fanout), not one
        # after another on the driver.
        found = map_files(view.location, list(sizes.items()), _conflict_counts)
        by_kind: Counter[str] = Counter()
        for kinds, _, _ in found:
            by_kind.update(kinds)
        report = {
            "action": view.cfg.consistency.action,
            "conflicts": sum(by_kind.values()),
            "by_kind": dict(by_kind),
            "rows_in_conflicts": sum(rows for _, rows, _ in found),
        }
        counts = {p: (n, size) for (p, size), (_, _, n) in zip(sizes.items(), found)}
        output = StepOutput(CONFLICTS, list(sizes), list(CONFLICT_SCHEMA.names), counts=counts)
        return StepOutcome(report, finish=_finish, output=output)


def _conflict_counts(location: Location, file: tuple[str, int]) -> tuple[dict[str, int], int, int]:
    """A conflicts file's conflicts by kind, the rows in them, and its own
    rows (path and bytes: one GET)."""
    path, size = file
    table = read_parquet(location, path, ["kind", "ids"], size)
    kinds = Counter(table.column("kind").to_pylist())
    rows = int(pc.sum(pc.list_value_length(table.column("ids"))).as_py() or 0)
    return dict(kinds), rows, table.num_rows


def _finish(report: dict[str, Any], summary: list[dict], rules: dict[str, int]) -> dict[str, Any]:
    return {"enabled": True, **report, "rows_dropped": sum(rules.values())}
