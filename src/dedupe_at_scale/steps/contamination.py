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
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.fanout import fold_refs
from dedupe_at_scale.report_parts import ReportSection
from dedupe_at_scale.stages.decontaminate import RESOURCE as INDEX
from dedupe_at_scale.steps.base import (
    GlobalStep,
    StagedFile,
    StagedView,
    StepOutcome,
    StepOutput,
    decision_paths,
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
        # Documents hit per (set, item), per file, summed in tasks: the
        # driver holds a few of the files' counts, not all of them.
        found = [_gather.remote(f, id_column, path) for f, path in zip(view.files, paths)]
        summary = view.prepared.get(INDEX, {})
        hits: Counter = Counter()
        items: dict[str, Counter] = {}
        for (source, item), n in fold_refs(found, sum_by_key).items():
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
        return StepOutcome(
            report, finish=_finish, output=StepOutput(CONTAMINATION, paths, list(SCHEMA.names))
        )


def _finish(report: dict[str, Any], summary: list[dict], rules: dict[str, int]) -> dict[str, Any]:
    return {"enabled": True, **report, "documents_dropped": sum(rules.values())}


@ray.remote(max_retries=TASK_RETRIES)
def _gather(staged_file: StagedFile, id_column: str, path: str) -> Counter:
    """This file's contaminated documents, written to `path`; how many per
    (set, item): what the driver receives is bounded by the eval items hit,
    not by the documents."""
    columns = [id_column, col.RULE, col.CONTAMINATION_SOURCE, col.CONTAMINATION_ITEM,
               col.CONTAMINATION_MATCHES]  # fmt: skip
    table = staged_file.read(columns)
    table = table.filter(pc.is_valid(table.column(col.CONTAMINATION_SOURCE)))
    dropped = pc.and_(
        pc.fill_null(pc.equal(table.column(col.STAGE), "decontaminate"), False),
        pc.fill_null(pc.equal(table.column(col.RULE), "contaminated"), False),
    )
    out = pa.table(
        {
            "id": pc.cast(table.column(id_column), pa.string()),
            "eval_set": table.column(col.CONTAMINATION_SOURCE),
            "item_id": table.column(col.CONTAMINATION_ITEM),
            "matches": table.column(col.CONTAMINATION_MATCHES),
            "action": pc.if_else(dropped, "dropped", "cut"),
        },
        schema=SCHEMA,
    )
    pq.write_table(out, path, filesystem=staged_file.location.arrow_fs)
    return Counter(zip(out.column("eval_set").to_pylist(), out.column("item_id").to_pylist()))


__all__ = ["CONTAMINATION", "Contamination"]
