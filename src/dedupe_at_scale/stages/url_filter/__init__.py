"""URL filtering (`url_filter` section, on `input.url_column`): documents
whose URL a block list names are rejected with the list and entry in the
reason (`url_domain: casino.example (ut1/gambling)`); every document with a
URL gets its registrable domain in a `domain` column (per-domain caps in the
mixture read it). Lists are read once on the driver (prepare)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.sections import ConfigError
from dedupe_at_scale.stages.base import Batch, Files, Stage, StageResult, rejections
from dedupe_at_scale.stages.url_filter.config import UrlFilterConfig
from dedupe_at_scale.stages.url_filter.lists import UrlLists, read_lists
from dedupe_at_scale.stages.url_filter.match import Matcher

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

RESOURCE = "url_lists"
RULES = ("url_domain", "url_address", "url_word", "url_soft_words", "url_substring", "url_missing")


class UrlFilterStage(Stage):
    name = stage = section = "url_filter"
    Config = UrlFilterConfig
    needs = (RESOURCE,)
    report_reasons = True

    def __init__(self, cfg: JobConfig, resources: dict[str, Any]):
        super().__init__(cfg)
        self.column = cfg.input.url_column
        self.matcher = Matcher(resources[RESOURCE])

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.input.url_column is not None and cfg.url_filter.enabled

    @staticmethod
    def fields(cfg: JobConfig) -> list[pa.Field]:
        return [pa.field(col.DOMAIN, pa.string())]

    @staticmethod
    def trace_detail(row: dict[str, Any]) -> str:
        return "" if row.get(col.DOMAIN) is None else f": domain {row[col.DOMAIN]}"

    @staticmethod
    def prepare(cfg: JobConfig, files: Files) -> dict[str, Any]:
        try:
            lists = read_lists(cfg.url_filter, files.read_text, files.list_dir)
        except OSError as exc:
            raise ConfigError(f"url_filter: {exc}") from exc
        return {RESOURCE: lists}

    @staticmethod
    def report(cfg: JobConfig, counters: Mapping[str, int], rules: Mapping[str, int]) -> dict:
        if not UrlFilterStage.enabled(cfg):
            return {"enabled": False}
        section = cfg.url_filter
        return {
            "enabled": True,
            "url_column": cfg.input.url_column,
            "lists": {
                kind: getattr(section, kind)
                for kind in (
                    "block_domains",
                    "block_urls",
                    "ut1",
                    "banned_words",
                    "soft_banned_words",
                    "banned_substrings",
                    "allow_domains",
                )  # fmt: skip
                if getattr(section, kind)
            },
            "rejected": {rule: rules.get(rule, 0) for rule in RULES if rules.get(rule)},
        }

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        rejected = section["rejected"]
        if not rejected:
            return [f"URL filter: nothing blocked (column {section['url_column']})."]
        parts = ", ".join(f"{n} {rule.removeprefix('url_')}" for rule, n in rejected.items())
        return [f"URL filter: {sum(rejected.values())} documents blocked ({parts})."]

    def __call__(self, batch: Batch) -> StageResult:
        n = batch.num_rows
        urls = batch.table.column(self.column).to_pylist()
        domains, verdicts = self.matcher(urls)
        active = batch.active()
        rows = [i for i in active.tolist() if verdicts[i] is not None]
        picked = [verdicts[i] for i in rows]
        return StageResult(
            columns={col.DOMAIN: pa.array(domains, pa.string())},
            rejected=rejections(
                n,
                rows,
                [v.rule for v in picked],
                [v.value for v in picked],
                [v.reason for v in picked],
            ),  # fmt: skip
        )


__all__ = ["RESOURCE", "UrlFilterStage", "UrlLists"]
