"""Publishes what the decontaminate stage found: OUT/contamination/ (one row
per contaminated document: id, eval set, item id, matches, action) and the
manifest's `decontaminate` section (per eval set: items, n-grams, documents
hit and the items hit most). The stage itself (stages/decontaminate/)
decides; this step only gathers its columns from the staged files."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import fold_refs, in_threads
from dedupe_at_scale.io.storage import put_parquet
from dedupe_at_scale.report_parts import ReportSection
from dedupe_at_scale.stages.decontaminate import RESOURCE as INDEX
from dedupe_at_scale.steps.base import (
    GlobalStep,
    StagedGroup,
    StagedView,
    StepOutcome,
    StepOutput,
    decision_paths,
    group_count,
    group_files,
)
from dedupe_at_scale.steps.tasks import TASK_RETRIES, sum_by_key

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

CONTAMINATION = "contamination"
TOP_ITEMS = 10
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("eval_set", pa.string()),
        ("item_id", pa.string()),
        ("matches", pa.int32()),
        ("action", pa.string()),  # dropped, or cut (the document kept without the matches)
    ]
)


class Contamination(GlobalStep):
    name = stage = "decontaminate"
    publishes = (CONTAMINATION,)

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        if "sources" not in section:  # the eval index was empty: nothing was looked up
            return []
        per_set = ", ".join(
            f"{name} {s['documents_hit']}" for name, s in section["sources"].items()
        )
        return [
            f"Decontamination ({section['ngram_size']}-grams, action {section['action']}): "
            f"{section['documents_hit']} documents hit (by eval set: {per_set}); "
            f"{section['documents_dropped']} dropped (see contamination/)."
        ]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        rows = [
            [name, item["item_id"], item["documents"]]
            for name, s in section.get("sources", {}).items()
            for item in s["top_items"]
        ]
        if not rows:
            return []
        return [ReportSection(
            "contamination", "Eval items found in the most documents",
            f"Per eval set, its items whose {section['ngram_size']}-grams the most documents "
            "hold (contamination/ lists every document, its item and matches).",
            table=(["eval set", "item", "documents"], rows),
        )]  # fmt: skip

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.decontaminate.enabled

    @staticmethod
    def outputs(cfg: JobConfig) -> dict[str, pa.Schema]:
        return {CONTAMINATION: SCHEMA}

    @staticmethod
    def idle_report(cfg: JobConfig) -> dict[str, Any]:
        return {"enabled": cfg.decontaminate.enabled}

    def run(self, view: StagedView) -> StepOutcome:
        paths = decision_paths(view, CONTAMINATION)
        id_column = view.cfg.input.id_column
        # A task per group of staged files (as ids and dedup read them):
        # documents hit per (set, item), summed in tasks, so the driver holds
        # a few groups' counts, not every file's; and each written file's
        # rows and bytes, for the write pass.
        groups = group_files(view.files, group_count(view.partitions))
        tasks = [
            _gather.options(num_returns=2).remote(g, id_column, [paths[f.index] for f in g.files])
            for g in groups
        ]
        written = [n for part in ray.get([t[1] for t in tasks]) for n in part]
        summary = view.prepared.get(INDEX, {})
        hits: Counter = Counter()
        items: dict[str, Counter] = {}
        for (source, item), n in fold_refs([t[0] for t in tasks], sum_by_key).items():
            hits[source] += n
            items.setdefault(source, Counter())[item] += n
        sources = {
            name: {
                **stats,
                "documents_hit": hits.get(name, 0),
                "top_items": [
                    {"item_id": i, "documents": c}
                    for i, c in sorted(items.get(name, {}).items(), key=lambda kv: (-kv[1], kv[0]))[
                        :TOP_ITEMS
                    ]
                ],
            }
            for name, stats in summary.get("sources", {}).items()
        }
        report = {
            "action": view.cfg.decontaminate.action,
            **{k: v for k, v in summary.items() if k != "sources"},
            "documents_hit": sum(hits.values()),
            "sources": sources,
        }
        counts = dict(zip(paths, written, strict=True))
        output = StepOutput(CONTAMINATION, paths, list(SCHEMA.names), counts=counts)
        return StepOutcome(report, finish=_finish, output=output)


def _finish(report: dict[str, Any], summary: list[dict], rules: dict[str, int]) -> dict[str, Any]:
    return {"enabled": True, **report, "documents_dropped": sum(rules.values())}


@ray.remote(max_retries=TASK_RETRIES)
def _gather(
    group: StagedGroup, id_column: str, paths: list[str]
) -> tuple[Counter, list[tuple[int, int]]]:
    """The group's contaminated documents, a file per staged file (`paths`);
    how many per (set, item), whose size is bounded by the eval items hit,
    not by the documents; and each file's (rows, bytes)."""
    columns = [id_column, col.RULE, col.CONTAMINATION_SOURCE, col.CONTAMINATION_ITEM,
               col.CONTAMINATION_MATCHES]  # fmt: skip
    found = [_contaminated(t, id_column) for t in group.read_each(columns)]
    location = group.files[0].location
    written = in_threads(lambda pair: put_parquet(location, *pair), list(zip(paths, found)))
    hits = Counter(
        pair for out in found
        for pair in zip(out.column("eval_set").to_pylist(), out.column("item_id").to_pylist())
    )  # fmt: skip
    return hits, written


def _contaminated(table: pa.Table, id_column: str) -> pa.Table:
    """A staged file's contaminated documents, as contamination/ lists them."""
    table = table.filter(pc.is_valid(table.column(col.CONTAMINATION_SOURCE)))
    dropped = pc.and_(
        pc.fill_null(pc.equal(table.column(col.STAGE), "decontaminate"), False),
        pc.fill_null(pc.equal(table.column(col.RULE), "contaminated"), False),
    )
    return pa.table(
        {
            "id": pc.cast(table.column(id_column), pa.string()),
            "eval_set": table.column(col.CONTAMINATION_SOURCE),
            "item_id": table.column(col.CONTAMINATION_ITEM),
            "matches": table.column(col.CONTAMINATION_MATCHES),
            "action": pc.if_else(dropped, "dropped", "cut"),
        },
        schema=SCHEMA,
    )


__all__ = ["CONTAMINATION", "Contamination"]
