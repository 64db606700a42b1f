"""Eval sets for decontamination: Parquet or JSONL files (or directories of
them), local or any URI the job reads, read on the driver into items whose text is
one text per configured field (a list field, such as answer choices, joined)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dedupe_at_scale.stages.base import ResourceError

if TYPE_CHECKING:
    from dedupe_at_scale.stages.base import Files
    from dedupe_at_scale.stages.decontaminate import DecontaminateConfig, EvalSourceConfig

SUFFIXES = (".parquet", ".pq", ".jsonl", ".json", ".ndjson")


class EvalSetError(ResourceError):
    """An eval set cannot be read or lacks a configured field."""


@dataclass
class EvalItem:
    """One eval item; each of its fields (question, choices, answer, ...) is
    a text of its own: n-grams never span two fields, and a field shorter
    than n words is matched whole."""

    source: str
    item_id: str
    texts: list[str]


def items_digest(items: list[EvalItem]) -> str:
    """The items' content: a changed eval set at the same URI changes it."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.source, item.item_id, item.texts]).encode())
    return digest.hexdigest()


def read_eval_items(cfg: DecontaminateConfig, files: Files) -> list[EvalItem]:
    items: list[EvalItem] = []
    for source in cfg.sources:
        items += _read_source(source, files)
    return items


def _read_source(source: EvalSourceConfig, files: Files) -> list[EvalItem]:
    try:
        found = files.find(source.uri)
    except OSError as exc:
        raise EvalSetError(f"eval set {source.name}: {exc}") from exc
    if found is None:
        raise EvalSetError(f"eval set {source.name}: {source.uri} not found")
    uris = [uri for uri in found if uri.endswith(SUFFIXES)]
    if not uris:
        raise EvalSetError(f"eval set {source.name}: no Parquet or JSONL files at {source.uri}")
    items: list[EvalItem] = []
    for uri in uris:
        try:
            data = pa.BufferReader(files.read_bytes(uri))
            is_parquet = uri.endswith((".parquet", ".pq"))
            table = pq.read_table(data) if is_parquet else pajson.read_json(data)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise EvalSetError(f"eval set {source.name}: {uri} cannot be read: {exc}") from exc
        wanted = [*source.fields, *([source.id_field] if source.id_field else [])]
        missing = [f for f in wanted if f not in table.column_names]
        if missing:
            raise EvalSetError(
                f"eval set {source.name}: {uri} has no field '{missing[0]}' "
                f"(fields: {', '.join(table.column_names)}; set decontaminate.sources[].fields)"
            )
        columns = [table.column(f).to_pylist() for f in source.fields]
        ids = table.column(source.id_field).to_pylist() if source.id_field else None
        for row in range(table.num_rows):
            texts = [_text(c[row]) for c in columns]
            item_id = str(ids[row]) if ids is not None else f"{posixpath.basename(uri)}#{row}"
            items.append(EvalItem(source.name, item_id, texts))
    return items


def _text(value: Any) -> str:
    """A field's text: strings as they are, lists and mappings joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value)
    return str(value)
