"""`boilerplate` section: lines (or paragraphs) that occur in many documents
across the whole corpus (cookie banners, navigation, footers, licence
headers) are cut from every document that holds them; a document left too
short is rejected (rule boilerplate_too_short).

Counting is distributed as dedup's is: each staged file's (unit hash,
document) pairs go to hash partitions, each partition counts documents per
unit and keeps those in at least min_documents (with the first document
holding each, for keep_first); the driver holds only their object refs.
The decision cuts the units where the staged rows are read, so every later
step sees the cleaned text, and it recomputes the MinHash signatures of the
documents it changed where a reader asks for them: near-duplicate detection
runs on the text without boilerplate."""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.report_parts import ReportSection
from dedupe_at_scale.sections import Require, Section
from dedupe_at_scale.stages.base import Batch, scatter
from dedupe_at_scale.steps.base import (
    Decision,
    GlobalStep,
    StagedFile,
    StagedView,
    StepOutcome,
    decision_files,
    decision_paths,
)
from dedupe_at_scale.steps.boilerplate.units import joined, split_units
from dedupe_at_scale.steps.partition_rows import reduce_by_partition
from dedupe_at_scale.steps.tasks import TASK_RETRIES

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig

UNITS = "__dds_boilerplate_units"  # units cut from the row
BYTES = "__dds_boilerplate_bytes"  # bytes of text cut from the row
RULE = "boilerplate_too_short"
TOP = 20  # most frequent removed units in the manifest
TEXT_FILES_AT_ONCE = 8


class BoilerplateConfig(Section):
    enabled: bool = False
    unit: Literal["line", "paragraph"] = "line"
    # A unit in at least this many documents is boilerplate.
    min_documents: int = 10
    # The first document (in input order) holding a unit keeps it (Dolma's
    # paragraph dedup with min_documents: 2).
    keep_first: bool = False
    # A document left with fewer characters is rejected.
    min_chars: int = 50

    def check(self, job: JobConfig, require: Require) -> None:
        require(self.min_documents >= 2, "boilerplate.min_documents", "must be at least 2")
        require(self.min_chars >= 0, "boilerplate.min_chars", "must be >= 0")
        require(not self.enabled or job.input.format == "text", "boilerplate",
                "cuts pre-training text (input.format: text)")  # fmt: skip


class Boilerplate(GlobalStep):
    name = stage = section = "boilerplate"
    Config = BoilerplateConfig

    @staticmethod
    def enabled(cfg: JobConfig) -> bool:
        return cfg.boilerplate.enabled

    @staticmethod
    def summary(section: dict[str, Any]) -> list[str]:
        return [
            f"Boilerplate: {section['units_removed']:,} {section['unit']}s "
            f"({section['bytes_removed']:,} bytes) cut from {section['documents_changed']:,} "
            f"documents; {section['boilerplate_units']:,} distinct {section['unit']}s in at least "
            f"{section['min_documents']} documents."
        ]

    @staticmethod
    def report_sections(section: dict[str, Any]) -> list[ReportSection]:
        unit = section["unit"]
        return [ReportSection(
            "boilerplate", f"Most frequent boilerplate {unit}s",
            f"The {unit}s found in the most documents (at least {section['min_documents']} makes "
            f"a {unit} boilerplate), each cut from them; first 200 characters.",
            table=([unit, "documents"], [[t["text"], t["documents"]] for t in section.get("top", [])]),
        )]  # fmt: skip

    def run(self, view: StagedView) -> StepOutcome:
        cfg = view.cfg
        found = reduce_by_partition(view, "boilerplate", _pairs, (cfg,), _count,
                                    (cfg.boilerplate.min_documents,))  # fmt: skip
        tops = ray.get([_top.remote(f) for f in found])
        distinct = sum(n for n, _ in tops)
        top = sorted((t for _, rows in tops for t in rows), key=lambda t: (-t[1], t[0]))[:TOP]
        texts = _texts_of(view, {h for h, _ in top})
        top = [(texts.get(h, ""), d) for h, d in top]
        report = functools.partial(_finish, cfg=cfg, distinct=distinct, top=top)
        if distinct == 0:  # nothing to cut: no decision to read back
            return StepOutcome({}, None, finish=report)
        paths = decision_paths(view, "boilerplate")
        wanted = [c for c in (cfg.input.document_column, col.LANGUAGE, col.LANGUAGE_SCORE)
                  if c in view.columns]  # fmt: skip
        joined = _joined.remote(*found)  # one ref for every task, not one per partition
        ray.get([_decide.remote(f, cfg, wanted, joined, path)
                 for f, path in zip(view.files, paths)])  # fmt: skip
        return StepOutcome(
            {},
            Decision(functools.partial(_apply, cfg=cfg), files=decision_files(paths, view)),
            block_summary=_block_summary,
            finish=report,
        )


def _pairs(staged: StagedFile, cfg: JobConfig) -> tuple[pa.Table, np.ndarray]:
    """(unit hash, uid) once per document and distinct unit, keyed by the hash."""
    kept = staged.read_kept([cfg.input.document_column])
    units = split_units(
        kept.column(cfg.input.document_column).combine_chunks(), cfg.boilerplate.unit
    )
    uids = kept.column(col.UID).to_numpy()[units.row]
    pairs = np.unique(
        np.stack([units.hash, uids.astype(np.uint64)], axis=1)[units.hash != 0], axis=0
    )
    table = pa.table({"hash": pairs[:, 0], "uid": pairs[:, 1].astype(np.int64)})
    return table, pairs[:, 0]


def _count(table: pa.Table, min_documents: int) -> pa.Table:
    """The partition's boilerplate units: hash, documents, first uid (sorted by hash)."""
    grouped = table.group_by("hash").aggregate([("uid", "count"), ("uid", "min")])
    grouped = grouped.filter(pc.greater_equal(grouped["uid_count"], min_documents))
    return pa.table({
        "hash": grouped["hash"], "documents": grouped["uid_count"], "first": grouped["uid_min"],
    }).sort_by("hash")  # fmt: skip


def _texts_of(view: StagedView, wanted: set[int]) -> dict[int, str]:
    """A unit's text as written, for the most frequent ones: staged files
    read a few at a time until each is found (frequent units are in most)."""
    texts: dict[int, str] = {}
    files = view.files
    for at in range(0, len(files), TEXT_FILES_AT_ONCE):
        for part in ray.get([_unit_texts.remote(f, view.cfg, wanted - texts.keys())
                             for f in files[at : at + TEXT_FILES_AT_ONCE]]):  # fmt: skip
            for h, text in part.items():
                texts.setdefault(h, text)
        if texts.keys() >= wanted:
            break
    return texts


@ray.remote(max_retries=TASK_RETRIES)
def _unit_texts(staged: StagedFile, cfg: JobConfig, wanted: set[int]) -> dict[int, str]:
    kept = staged.read_kept([cfg.input.document_column])
    units = split_units(
        kept.column(cfg.input.document_column).combine_chunks(), cfg.boilerplate.unit
    )
    hits = np.flatnonzero(np.isin(units.hash, np.array(sorted(wanted), dtype=np.uint64)))
    out: dict[int, str] = {}
    for k in hits.tolist():
        out.setdefault(int(units.hash[k]), units.text[k].as_py().strip())
    return out


@ray.remote(max_retries=TASK_RETRIES)
def _top(found: pa.Table) -> tuple[int, list[tuple[int, int]]]:
    order = np.argsort(-found["documents"].to_numpy(), kind="stable")[:TOP]
    rows = [(int(found["hash"][i].as_py()), int(found["documents"][i].as_py())) for i in order]
    return found.num_rows, rows


@ray.remote(max_retries=TASK_RETRIES)
def _joined(*found: pa.Table) -> pa.Table:
    """All partitions' units (hash, documents, first uid) as one table, by
    hash: one object each _decide task takes (from its node's store)."""
    return pa.concat_tables(found).sort_by("hash").combine_chunks()


@ray.remote(max_retries=TASK_RETRIES)
def _decide(
    staged: StagedFile, cfg: JobConfig, columns: list[str], found: pa.Table, path: str
) -> int:
    """One staged file's changes, as one small decision file: the changed
    rows' uid, new text, units and bytes cut, whether they are left too short,
    and (with dedup on) their new hashes and signatures. Returns their count."""
    m, text = cfg.boilerplate, cfg.input.document_column
    hashes, first = found["hash"].to_numpy(), found["first"].to_numpy()
    kept = staged.read_kept(columns)
    texts = kept.column(text).combine_chunks()
    units = split_units(texts, m.unit)
    at = np.minimum(np.searchsorted(hashes, units.hash), max(len(hashes) - 1, 0))
    boiler = (units.hash != 0) & (hashes[at] == units.hash)
    if m.keep_first:
        boiler &= first[at] != kept.column(col.UID).to_numpy()[units.row]
    cut = np.bincount(units.row[boiler], minlength=kept.num_rows)
    changed = np.flatnonzero(cut)
    pieces = units.text.to_pylist()
    starts = np.searchsorted(units.row, np.arange(kept.num_rows + 1))
    new = pa.array([
        joined([pieces[k] for k in range(starts[r], starts[r + 1]) if not boiler[k]], m.unit)
        for r in changed.tolist()
    ], pa.string())  # fmt: skip
    rows = kept.take(pa.array(changed)).set_column(kept.schema.get_field_index(text), text, new)
    left = pc.utf8_length(pc.utf8_trim_whitespace(new)).to_numpy(zero_copy_only=False)
    before = pc.binary_length(texts.take(pa.array(changed))).to_numpy(zero_copy_only=False)
    decided = {
        col.UID: rows.column(col.UID), "text": new, UNITS: pa.array(cut[changed].astype(np.int32)),
        BYTES: pa.array((before - pc.binary_length(new).to_numpy(zero_copy_only=False)).astype(np.int64)),
        "left": pa.array(left.astype(np.int64)), "short": pa.array(left < m.min_chars),
    }  # fmt: skip
    if cfg.dedup.enabled:
        decided |= _signed(rows, cfg)
    pq.write_table(pa.table(decided), path, filesystem=staged.location.arrow_fs)
    return len(changed)


def _signed(rows: pa.Table, cfg: JobConfig) -> dict[str, pa.Array]:
    """The exact hashes and MinHash signatures of rows from their new text."""
    from dedupe_at_scale.stages.minhash import MinHashStage

    if col.LANGUAGE not in rows.column_names:  # langid off: the spaces decide
        rows = rows.append_column(col.LANGUAGE, pa.nulls(rows.num_rows, pa.string()))
        rows = rows.append_column(col.LANGUAGE_SCORE, pa.nulls(rows.num_rows, pa.float32()))
    rows = rows.append_column(col.STAGE, pa.nulls(rows.num_rows, pa.string()))
    signed = MinHashStage(cfg)(Batch(rows, cfg.input.document_column)).columns
    return {name: signed[name] for name in (col.EXACT_HI, col.EXACT_LO, col.MINHASH)}


def _apply(index: int, table: pa.Table, decided: pa.Table, cfg: JobConfig) -> pa.Table:
    """The decision file's changes on the rows a reader asked for: new text
    and signatures where read, the short rows rejected, the counts added."""
    n = table.num_rows
    if decided.num_rows == 0 or n == 0:
        return _with_counts(table, np.zeros(n, np.int32), np.zeros(n, np.int64))
    pos, found = col.decided_rows(table, decided)
    rows = np.flatnonzero(found)
    take = pos[rows]
    for name in (cfg.input.document_column, col.EXACT_HI, col.EXACT_LO, col.MINHASH):
        source = "text" if name == cfg.input.document_column else name
        if name in table.column_names and source in decided.column_names:
            new = decided.column(source).combine_chunks().take(pa.array(take))
            whole = table.column(name).combine_chunks()
            table = table.set_column(
                table.schema.get_field_index(name), name, _replaced(whole, rows, new)
            )
    units, removed = np.zeros(n, np.int32), np.zeros(n, np.int64)
    units[rows] = decided.column(UNITS).to_numpy()[take]
    removed[rows] = decided.column(BYTES).to_numpy()[take]
    short = np.zeros(n, bool)
    short[rows] = decided.column("short").to_numpy(zero_copy_only=False)[take]
    if short.any():
        left = np.zeros(n, np.int64)
        left[rows] = decided.column("left").to_numpy()[take]
        m = cfg.boilerplate
        at = np.flatnonzero(short)  # reasons for the rejected rows only
        reason = scatter(n, at, [f"{RULE}: {left[i]} characters left after cutting {units[i]} "
                                 f"boilerplate {m.unit}(s), under {m.min_chars}"
                                 for i in at.tolist()], pa.string())  # fmt: skip
        table = col.mark_rejected(table, short, "boilerplate", pa.array([RULE] * n), reason,
                                  pa.array(left.astype(np.float64)))  # fmt: skip
    return _with_counts(table, units, removed)


def _with_counts(table: pa.Table, cut: np.ndarray, removed: np.ndarray) -> pa.Table:
    table = table.append_column(UNITS, pa.array(cut.astype(np.int32)))
    return table.append_column(BYTES, pa.array(removed.astype(np.int64)))


def _replaced(whole: pa.Array, rows: np.ndarray, new: pa.Array) -> pa.Array:
    """`whole` with its `rows` (ascending) set to `new`'s values."""
    if pa.types.is_fixed_size_list(whole.type):  # replace_with_mask has no kernel for these
        width = whole.type.list_size
        values = whole.flatten().to_numpy().reshape(len(whole), width).copy()
        values[rows] = new.flatten().to_numpy().reshape(len(rows), width)
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)
    mask = np.zeros(len(whole), bool)
    mask[rows] = True
    return pc.replace_with_mask(whole, pa.array(mask), new.cast(whole.type))


def _block_summary(table: pa.Table) -> list[dict[str, Any]]:
    """Units and bytes cut in a block, and the documents that lost some."""
    if UNITS not in table.column_names:
        return []
    cut = table.column(UNITS).to_numpy()
    return [{"units": int(cut.sum()), "bytes": int(table.column(BYTES).to_numpy().sum()),
             "documents": int((cut > 0).sum())}]  # fmt: skip


def _finish(report: dict, rows: list[dict], rules: dict, cfg: JobConfig, distinct: int,
            top: list[tuple[str, int]]) -> dict[str, Any]:  # fmt: skip
    m = cfg.boilerplate
    totals = Counter()
    for r in rows:
        totals.update({k: r[k] for k in ("units", "bytes", "documents")})
    return {
        "enabled": True, "unit": m.unit, "min_documents": m.min_documents,
        "keep_first": m.keep_first, "min_chars": m.min_chars,
        "boilerplate_units": distinct, "units_removed": totals["units"],
        "bytes_removed": totals["bytes"], "documents_changed": totals["documents"],
        "documents_rejected": rules.get(RULE, 0),
        "top": [{"text": t[:200], "documents": d} for t, d in top],
    }  # fmt: skip
