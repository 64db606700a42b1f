"""One input schema for all shards, decided from the footers before Ray starts.

Shards written by different tools disagree on types: int32 ids in one file and
int64 in the next, float32 and float64 measures, string and large_string
text, dictionary-encoded strings, struct columns that grew a field. Every
read unit is cast to one schema here, so the staged files, the global steps
and data/ all see the same columns and types.

The rules, per column (the text column is always read as UTF-8 strings):
  - types Arrow widens without loss of kind are widened (`pa.unify_schemas`,
    permissive: int8..int64 -> int64, float32 -> float64, string and
    large_string -> large_string, a struct's fields merged); dictionary and
    view types count as their value types; a column missing from a file is
    null there;
  - the id column becomes string when its types disagree otherwise (int and
    string ids), or when some file has no id column (its ids are generated
    as "path#row" strings);
  - Hive partition directories (lang=en/) are string columns of the files
    below them, where a file lacks that column;
  - any other disagreement stops the job before Ray starts, naming the column,
    the two types and a file of each, unless `input.schema` pins the column's
    type (a pyarrow type name: "string", "int64", "double", "timestamp[ms]").

An input column named like one the job writes (FineWeb's shards carry their
own `language` and `language_score`) is renamed to `input_<name>`, or stops the
job when `input.on_column_clash` is "error": two columns of one name would
break every reader of data/, and silently replacing it would lose data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dedupe_at_scale.columns import INTERNAL_PREFIX
from dedupe_at_scale.io.inputs import InputError, InputFile
from dedupe_at_scale.sections import ConfigError

if TYPE_CHECKING:
    from dedupe_at_scale.io.inputs import InputConfig


class SchemaError(InputError):
    """Shards whose column types cannot be reconciled."""


@dataclass
class InputSchema:
    """The columns every read unit is cast to (the text column excluded: the
    reader makes it UTF-8 strings), and what was cast in which file."""

    schema: pa.Schema
    # Every column in output order, the text column included.
    order: list[str] = field(default_factory=list)
    # relpath -> {column: "int32 -> int64"} for the files whose types were changed.
    promoted: dict[str, dict[str, str]] = field(default_factory=dict)
    # Input column -> its name in the output, for the names the job writes.
    renamed: dict[str, str] = field(default_factory=dict)

    def conform(
        self, table: pa.Table, display: str, text_column: str,
        partitions: dict[str, str | None] | None = None,
    ) -> pa.Table:  # fmt: skip
        """`table` (one unit of one file) in the unified columns and types,
        its Hive `partitions` as columns where it lacks them; the text column
        is left as read."""
        n = table.num_rows
        columns, names = [], []
        for name in self.order:
            if name == text_column:
                if name in table.column_names:
                    columns.append(table.column(name))
                    names.append(name)
                continue
            target = self.schema.field(self.renamed.get(name, name))
            if name in table.column_names:
                column = table.column(name)
                source = f"column '{target.name}' ({column.type})"
            elif partitions and name in partitions:
                column = pa.array([partitions[name]] * n, pa.string())
                source = f"partition directory {name}={partitions[name]}"
            else:
                column, source = pa.nulls(n, target.type), ""  # already the target type
            if column.type != target.type:
                try:
                    column = pc.cast(column, target.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(
                        f"{display}: {source} cannot be cast to {target.type}, "
                        f"the type the input was unified to: {exc}"
                    ) from exc
            columns.append(column)
            names.append(target.name)
        return pa.table(columns, names=names)

    def for_tasks(self) -> InputSchema:
        """What a read task needs: without `promoted`, which is for the
        manifest and lists every file whose types changed (each task would
        carry it, and a pass's task arguments grow with files x files)."""
        return replace(self, promoted={})

    def describe(self) -> dict:
        """For the manifest."""
        return {
            "columns": {f.name: str(f.type) for f in self.schema},
            "promoted_files": self.promoted,
            "renamed_columns": self.renamed,
        }


def _value_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(kind):
        return _value_type(kind.value_type)
    if kind == pa.string_view():
        return pa.string()
    if kind == pa.binary_view():
        return pa.binary()
    return kind


def _pinned(cfg: InputConfig) -> dict[str, pa.DataType]:
    pinned = {}
    for name, alias in (cfg.pinned_types or {}).items():
        try:
            pinned[name] = pa.type_for_alias(str(alias))
        except ValueError as exc:
            raise ConfigError(
                f"input.schema.{name}: '{alias}' is not a pyarrow type name "
                "(examples: string, large_string, int64, double, bool, timestamp[ms])"
            ) from exc
    return pinned


def unify_input_schema(
    files: list[InputFile], cfg: InputConfig, written: dict[str, str] | None = None
) -> InputSchema:
    """The schema every unit is cast to, from the files' footers (files
    quarantined by input.on_invalid_file have no say). `written`: the columns
    the job adds, each with what adds it."""
    pinned = _pinned(cfg)
    readable = [f for f in files if f.problem is None and f.schema is not None]
    order: list[str] = []
    seen: dict[str, list[tuple[pa.DataType, str]]] = {}  # column -> (type, file)
    for f in readable:
        partitions = [pa.field(k, pa.string()) for k, _ in f.partitions if k not in f.schema.names]
        for fld in [*f.schema, *partitions]:
            if fld.name not in seen:
                order.append(fld.name)
                seen[fld.name] = []
            seen[fld.name].append((fld.type, f.display))
    if cfg.document_column not in order:  # no readable file: the text column still exists
        order.insert(0, cfg.document_column)
    ids_generated = any(not f.has_id for f in readable)
    if ids_generated and cfg.id_column not in seen:
        order.append(cfg.id_column)  # where the generated ids always went: last
        seen[cfg.id_column] = []
    renamed = _clashes(order, seen, cfg, written or {})
    fields = [
        pa.field(
            renamed.get(name, name), _unify_column(name, seen[name], pinned, cfg, ids_generated)
        )
        for name in order
        if name != cfg.document_column
    ]
    schema = pa.schema(fields)
    _check_url_column(schema, cfg, readable)
    promoted: dict[str, dict[str, str]] = {}
    for f in readable:
        for fld in f.schema:
            if fld.name == cfg.document_column:
                continue
            target = schema.field(renamed.get(fld.name, fld.name)).type
            if fld.type != target:
                promoted.setdefault(f.relpath, {})[fld.name] = f"{fld.type} -> {target}"
    return InputSchema(schema, order, promoted, renamed)


RENAMED_PREFIX = "input_"


def _check_url_column(schema: pa.Schema, cfg: InputConfig, readable: list[InputFile]) -> None:
    """input.url_column names a string column of some file (a file without
    it has null URLs, as files without any other column have nulls)."""
    name = cfg.url_column
    if name is None or not readable:
        return
    if name not in schema.names:
        raise ConfigError(
            f"input.url_column: no input file has a column '{name}' "
            f"(columns: {', '.join(schema.names) or 'none'})"
        )
    kind = schema.field(name).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ConfigError(f"input.url_column: column '{name}' has type {kind}, expected string")


def _clashes(
    order: list[str],
    seen: dict[str, list[tuple[pa.DataType, str]]],
    cfg: InputConfig,
    written: dict[str, str],
) -> dict[str, str]:
    """New names for the input columns the job writes itself (or that carry
    its internal prefix, which the output would drop)."""
    roles = {cfg.document_column: "input.text_column", cfg.id_column: "input.id_column"}
    if cfg.url_column is not None:
        roles[cfg.url_column] = "input.url_column"
    renamed = {}
    for name in order:
        if not seen.get(name):
            continue  # not a column of any file (the post-training text, generated ids)
        owner = written.get(name)
        if owner is None and name.startswith(INTERNAL_PREFIX):
            owner = "the job, internally"
        if owner is None:
            continue
        where = seen[name][0][1]
        if name in roles:
            raise ConfigError(
                f"{roles[name]} '{name}' is a column the job writes ({owner}); "
                "rename it in the input"
            )
        new = RENAMED_PREFIX + name
        if cfg.on_column_clash == "error" or new in seen or new in written:
            advice = (
                f"'{new}' is taken too; rename the column in the input"
                if cfg.on_column_clash == "rename"
                else f"set input.on_column_clash: rename to keep it as '{new}'"
            )
            raise SchemaError(
                f"column '{name}' of {where} is a column the job writes ({owner}); {advice}"
            )
        renamed[name] = new
    return renamed


def _unify_column(
    name: str,
    types: list[tuple[pa.DataType, str]],
    pinned: dict[str, pa.DataType],
    cfg: InputConfig,
    ids_generated: bool,
) -> pa.DataType:
    if name in pinned:
        return pinned[name]
    is_id = name == cfg.id_column
    if is_id and (ids_generated or cfg.id_policy == "generate"):
        return pa.string()  # generated ids are "path#row" strings
    values = [(_value_type(kind), display) for kind, display in types]
    unified = values[0][0]
    examples: dict[pa.DataType, str] = {}  # the first file of each type, for errors
    for kind, display in values:
        examples.setdefault(kind, display)
        try:
            merged = pa.unify_schemas(
                [pa.schema([(name, unified)]), pa.schema([(name, kind)])],
                promote_options="permissive",
            )
            unified = merged.field(name).type
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            if is_id:
                return pa.string()  # int and string ids: all become strings
            other, where = next((k, d) for k, d in examples.items() if k != kind)
            raise SchemaError(
                f"column '{name}' has type {other} in {where} and {kind} in {display}, "
                f"which cannot be reconciled ({exc}); pin one type with input.schema "
                f"(for example input.schema: {{{name}: string}}) or leave one set of files out"
            ) from exc
    return unified
