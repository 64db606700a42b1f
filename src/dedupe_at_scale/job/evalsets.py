"""Eval sets for decontamination: Parquet or JSONL files (or directories of
them), local or any fsspec URL, read on the driver into items whose text is
one text per configured field (a list field, such as answer choices, joined)."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dedupe_at_scale.io.inputs import InputError
from dedupe_at_scale.io.storage import StorageError, describe_error, resolve
from dedupe_at_scale.stages.decontaminate import EvalItem

if TYPE_CHECKING:
    from dedupe_at_scale.io.storage import StorageConfig
    from dedupe_at_scale.stages.decontaminate import DecontaminateConfig, EvalSourceConfig

SUFFIXES = (".parquet", ".pq", ".jsonl", ".json", ".ndjson")


class EvalSetError(InputError):
    """An eval set cannot be read or lacks a configured field."""


def read_eval_items(cfg: DecontaminateConfig, storage: StorageConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    for source in cfg.sources:
        items += _read_source(source, storage)
    return items


def _read_source(source: EvalSourceConfig, storage: StorageConfig) -> list[EvalItem]:
    location = resolve(source.uri, storage)
    fs = location.fs
    try:
        if fs.isdir(location.path):
            paths = sorted(p for p in fs.find(location.path) if p.endswith(SUFFIXES))
        elif fs.isfile(location.path):
            paths = [location.path]
        else:
            raise EvalSetError(f"eval set {source.name}: {source.uri} not found")
    except EvalSetError:
        raise
    except Exception as exc:
        raise StorageError(
            f"eval set {source.name}: cannot list {source.uri}: {describe_error(exc)}"
        ) from exc
    if not paths:
        raise EvalSetError(f"eval set {source.name}: no Parquet or JSONL files at {source.uri}")
    items: list[EvalItem] = []
    for path in paths:
        display = location.display(path)
        try:
            with fs.open(path, "rb") as handle:
                table = (
                    pq.read_table(handle)
                    if path.endswith((".parquet", ".pq"))
                    else pajson.read_json(handle)
                )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise EvalSetError(f"eval set {source.name}: {display} cannot be read: {exc}") from exc
        wanted = [*source.fields, *([source.id_field] if source.id_field else [])]
        missing = [f for f in wanted if f not in table.column_names]
        if missing:
            raise EvalSetError(
                f"eval set {source.name}: {display} has no field '{missing[0]}' "
                f"(fields: {', '.join(table.column_names)}; set decontaminate.sources[].fields)"
            )
        columns = [table.column(f).to_pylist() for f in source.fields]
        ids = table.column(source.id_field).to_pylist() if source.id_field else None
        for row in range(table.num_rows):
            texts = [_text(c[row]) for c in columns]
            item_id = str(ids[row]) if ids is not None else f"{posixpath.basename(path)}#{row}"
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
