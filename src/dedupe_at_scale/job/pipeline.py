"""The job, composed on Ray Data (with staged.py, the only modules that build datasets).

Phases:
  1. annotate  read shards -> language ID -> quality rules, streamed and fused
               into one task per read unit, written to OUT/_staging/annotated/
  2. global    duplicate ids, dedup, mixture plan: decisions per staged file
  3. write     staging + decisions -> data/ (kept), rejected/ (one row per
               dropped doc), duplicates/, all under OUT/_staging/publish/
  4. account   per-block counts from the staging columns, merged on the driver
  5. commit    check input = kept + rejected, seal, publish, write manifest.json
A failed run never writes a manifest, and the manifest is the marker of a
complete output; output.py has the commit protocol and what a re-run resumes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import SaveMode
from ray.data.datasource import FilenameProvider

from dedupe_at_scale import __version__
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import ConfigError, JobConfig
from dedupe_at_scale.io.output import OutputLayout, Resume, count_rows
from dedupe_at_scale.io.quarantine import rejected_table, write_quarantined_files
from dedupe_at_scale.io.reader import (
    InputError,
    InputFile,
    ReadUnit,
    discover_inputs,
    input_datasource,
    parquet_datasource,
    plan_units,
    prepare_table,
)
from dedupe_at_scale.io.staged import Staged
from dedupe_at_scale.io.storage import Location, StorageError, describe_error, overlaps, resolve
from dedupe_at_scale.job.accounting import (
    AccountingError,
    check_accounting,
    collect_stats,
    quarantine_stats,
)
from dedupe_at_scale.job.manifest import build_manifest
from dedupe_at_scale.stages.annotate import annotate_batch
from dedupe_at_scale.stages.minhash import candidate_probability, params_for
from dedupe_at_scale.steps.dedup.tasks import DECISION_SCHEMA, run_dedup
from dedupe_at_scale.steps.ids import check_ids
from dedupe_at_scale.steps.mixture import (
    COPIES,
    ORDER,
    GroupPlan,
    draws,
    expand_copies,
    group_keys,
    histogram,
    mixture_summary,
    units,
)
from dedupe_at_scale.steps.mixture import plan as plan_mixture

log = logging.getLogger(__name__)


class PartFilenames(FilenameProvider):
    """part-<task>.parquet: ordered, deterministic shard names."""

    def __init__(self, prefix: str = "part"):
        self.prefix = prefix

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"{self.prefix}-{task_index:05d}.parquet"


@dataclass
class JobResult:
    manifest: dict[str, Any]
    output_uri: str
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class JobPlan:
    """Everything checked before Ray starts: config, output, input footers."""

    input_uri: str
    output_uri: str
    cfg: JobConfig
    source: Location
    layout: OutputLayout
    files: list[InputFile]
    units: list[ReadUnit]
    planning_seconds: float
    resume: Resume = "none"


def plan_job(input_uri: str, output_uri: str, cfg: JobConfig, overwrite: bool = False) -> JobPlan:
    """Check the output and every input footer; needs no Ray. Decides what an
    earlier, interrupted run of the same job left that can be kept."""
    started = time.time()
    source = resolve(input_uri, cfg.storage)
    output = resolve(output_uri, cfg.storage)
    if overlaps(source, output):
        raise StorageError(
            f"output {output_uri} overlaps the input {input_uri}: the job would read its own "
            "output or clear its input; choose an output outside the input"
        )
    layout = OutputLayout(output)
    _on_storage(output_uri, lambda: layout.check(overwrite))
    files = discover_inputs(source, cfg.input)
    units = plan_units(files, cfg.input.rows_per_task)
    resume = _on_storage(
        output_uri,
        lambda: layout.prepare(overwrite, fingerprint(input_uri, output_uri, cfg, files)),
    )
    return JobPlan(
        input_uri, output_uri, cfg, source, layout, files, units, time.time() - started, resume
    )


def run_job(input_uri: str, output_uri: str, cfg: JobConfig, overwrite: bool = False) -> JobResult:
    """Plan and execute on the Ray cluster this process is connected to."""
    return execute(plan_job(input_uri, output_uri, cfg, overwrite))


def fingerprint(input_uri: str, output_uri: str, cfg: JobConfig, files: list[InputFile]) -> str:
    """What a resumed run must share with the interrupted one."""
    key = {
        "input": input_uri,
        "output": output_uri,
        "config": cfg.to_dict(),
        "files": [(f.relpath, f.size_bytes, f.num_rows, f.problem) for f in files],
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _on_storage(uri: str, action: Callable[[], Any]) -> Any:
    """Run a storage action; a failure names the URI (botocore and aiohttp
    errors are not OSErrors)."""
    try:
        return action()
    except (StorageError, InputError, ConfigError):
        raise
    except Exception as exc:
        raise StorageError(f"cannot use output {uri}: {describe_error(exc)}") from exc


def execute(plan: JobPlan) -> JobResult:
    started = time.time() - plan.planning_seconds
    timings: dict[str, float] = {"plan": round(plan.planning_seconds, 3)}
    cfg, source, layout, files, units = plan.cfg, plan.source, plan.layout, plan.files, plan.units

    if plan.resume == "publish":
        # An interrupted run already sealed this output: only publishing is left.
        ready = layout.read_ready()
        layout.publish(ready)
        return JobResult(ready["manifest"], plan.output_uri, timings)

    ray.data.DataContext.get_current().execution_options.preserve_order = True

    with _timed(timings, "annotate"):
        if plan.resume != "annotated":
            if units:
                # One block per read unit: Ray would otherwise split small reads further.
                annotated = ray.data.read_datasource(
                    input_datasource(source, units, cfg.input), override_num_blocks=len(units)
                )
                annotated = annotated.map_batches(
                    annotate_batch, fn_kwargs={"cfg": cfg}, batch_format="pyarrow",
                    batch_size=None,
                )  # fmt: skip
                _write(
                    annotated, layout.staging, layout, cfg, rows_per_file=None, prefix="annotated"
                )
            layout.mark_annotated()

    staged = Staged(layout, layout.list_parquet(layout.staging), cfg)
    id_stats: dict[str, Any] = {}
    if staged.files and any(f.has_id for f in files):
        with _timed(timings, "ids"):
            id_stats = _check_ids(plan, staged)

    dedup_stats: dict[str, Any] = {}
    if cfg.dedup.enabled and staged.files:
        with _timed(timings, "dedup"):
            dedup_stats = _deduplicate(plan, staged)

    mixture_report: dict[str, Any] = {"enabled": False}
    if cfg.mixture.enabled and staged.files:
        with _timed(timings, "mixture"):
            staged.mixture = _plan_mixture(plan, staged)

    with _timed(timings, "write"):
        rows_per_shard = _rows_per_shard(cfg, layout, staged.files)
        _write(
            _kept_dataset(staged),
            layout.data, layout, cfg, rows_per_shard, prefix="part",
        )  # fmt: skip
        _write(
            staged.read(_rejected_columns(cfg)).map_batches(
                _rejected_documents,
                fn_kwargs={"cfg": cfg},
                batch_format="pyarrow",
                batch_size=None,
            ),
            layout.rejected, layout, cfg, rows_per_shard, prefix="part",
        )  # fmt: skip
        write_quarantined_files(source, files, layout.location, layout.rejected, cfg)
        if staged.decisions is not None:
            columns = ["id", "cluster_id", "kept"]
            _write(
                ray.data.read_datasource(parquet_datasource(layout.location, staged.decisions, columns)),
                layout.duplicates, layout, cfg, rows_per_shard, prefix="part",
            )  # fmt: skip
        _write_empty_shards(plan)

    with _timed(timings, "account"):
        stats = collect_stats(staged) + quarantine_stats(files)
        if staged.mixture is not None:
            mixture_report = _mixture_report(plan, staged)
        data_shards = layout.describe_shards("data")
        rejected_shards = layout.describe_shards("rejected")
        duplicate_shards = layout.describe_shards("duplicates") if cfg.dedup.enabled else []
        check_accounting(files, stats, data_shards, rejected_shards)

    timings["total"] = time.time() - started
    manifest = build_manifest(
        cfg=cfg,
        input_uri=plan.input_uri,
        output_uri=plan.output_uri,
        files=files,
        stats=stats,
        data_shards=data_shards,
        rejected_shards=rejected_shards,
        duplicate_shards=duplicate_shards,
        id_check=id_stats,
        dedup=dedup_stats,
        mixture=mixture_report,
        timings=timings,
        started=started,
    )
    # What an interrupted run of the same job had finished already.
    manifest["resumed_after"] = {"none": None, "annotated": "annotate"}[plan.resume]
    shards = [s["path"] for s in data_shards + rejected_shards + duplicate_shards]
    with _timed(timings, "publish"):
        layout.publish(layout.seal(shards, manifest))
    return JobResult(manifest=manifest, output_uri=plan.output_uri, timings=timings)


class _timed:
    def __init__(self, timings: dict[str, float], name: str):
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.started = time.time()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.time() - self.started, 3)


def _plan_mixture(plan: JobPlan, staged: Staged) -> dict[str, GroupPlan]:
    """Histogram of units over draws per group (per block, merged here), then
    the copies per group that reach the targets."""
    cfg = plan.cfg
    if cfg.mixture.group_column not in staged.schema_names():
        raise ConfigError(
            f"mixture.group_column '{cfg.mixture.group_column}' is not a column of the data "
            f"(columns: {', '.join(n for n in staged.schema_names() if not n.startswith('__'))})"
        )
    columns = [cfg.input.id_column, cfg.input.text_column, cfg.mixture.group_column]
    parts = (
        staged.read(columns)
        .map_batches(
            _histogram_block, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", batch_size=None
        )
        .take_all()
    )
    merged: dict[str, np.ndarray] = {}
    for row in parts:
        merged[row["group"]] = merged.get(row["group"], 0) + np.asarray(row["units"])
    return plan_mixture(cfg.mixture, merged)


def _histogram_block(table: pa.Table, cfg: JobConfig) -> pa.Table:
    kept = col.kept_rows(table)
    m = cfg.mixture
    hist = histogram(
        group_keys(kept, m),
        draws(kept.column(cfg.input.id_column), m.seed),
        units(kept.column(cfg.input.text_column), m.unit),
    )
    return pa.table({"group": list(hist), "units": [h.tolist() for h in hist.values()]})


def _achieved_block(table: pa.Table, cfg: JobConfig) -> pa.Table:
    kept = col.kept_rows(table)
    copies = kept.column(COPIES).to_numpy()
    size = units(kept.column(cfg.input.text_column), cfg.mixture.unit)
    groups = group_keys(kept, cfg.mixture)
    names = sorted(set(groups.tolist()))
    return pa.table(
        {
            "group": names,
            "units": [float((size * copies)[groups == g].sum()) for g in names],
            "documents": [int((groups == g).sum()) for g in names],
            "copies": [int(copies[groups == g].sum()) for g in names],
        }
    )


def _mixture_report(plan: JobPlan, staged: Staged) -> dict[str, Any]:
    cfg = plan.cfg
    columns = [cfg.input.id_column, cfg.input.text_column]
    rows = (
        staged.read(columns)
        .map_batches(
            _achieved_block, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", batch_size=None
        )
        .take_all()
    )
    return mixture_summary(cfg.mixture, staged.mixture or {}, rows)


def _deduplicate(plan: JobPlan, staged: Staged) -> dict[str, Any]:
    cfg = plan.cfg
    params = params_for(cfg.dedup)
    names = set(staged.schema_names())
    keep, skipped = [], []
    for entry in cfg.dedup.keep:
        name = entry.lstrip("-")
        # "id" (or the configured id column) means the document id.
        is_id = name in ("id", cfg.input.id_column)
        column = "id" if is_id else name
        if is_id or name in names:
            keep.append((column, "descending" if entry.startswith("-") else "ascending"))
        else:
            skipped.append(entry)
    if not any(name == "id" for name, _ in keep):
        keep.append(("id", "ascending"))  # ids break every remaining tie
    outcome = run_dedup(
        staged.layout.location, staged.files, cfg.dedup, params.bands, params.rows,
        cfg.input.id_column, keep, _partitions(cfg), staged.layout.decisions, staged.id_decisions,
    )  # fmt: skip
    staged.decisions = outcome.decisions
    return {
        **outcome.stats,
        "num_perm": params.num_perm,
        "keep_effective": [("-" if o == "descending" else "") + n for n, o in keep],
        "keep_skipped_missing_columns": skipped,
        "s_curve": {
            f"{s:.2f}": round(candidate_probability(s, params.bands, params.rows), 4)
            for s in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
        },
    }


def _partitions(cfg: JobConfig) -> int:
    return cfg.dedup.partitions or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))


def _check_ids(plan: JobPlan, staged: Staged) -> dict[str, Any]:
    cfg = plan.cfg
    outcome = check_ids(
        staged.layout.location, staged.files, cfg.input.id_column, _partitions(cfg),
        staged.layout.decisions,
    )  # fmt: skip
    if outcome.repeated and cfg.input.on_invalid_document == "error":
        raise InputError(
            f"duplicate document ids: {outcome.example} ({outcome.repeated} documents repeat "
            "an earlier id; set input.on_invalid_document: quarantine to keep the first "
            "and reject the others)"
        )
    staged.id_decisions = outcome.decisions if outcome.repeated else None
    return {"repeated_ids": outcome.repeated}


def _write(
    ds: ray.data.Dataset,
    path: str,
    layout: OutputLayout,
    cfg: JobConfig,
    rows_per_file: int | None,
    prefix: str,
) -> None:
    compression = None if cfg.output.compression == "none" else cfg.output.compression
    ds.write_parquet(
        path,
        filesystem=layout.location.arrow_fs,
        filename_provider=PartFilenames(prefix),
        min_rows_per_file=rows_per_file,
        max_rows_per_file=rows_per_file,
        compression=compression,
        # Our names are deterministic (no write UUID); the directory is ours
        # and was cleared by OutputLayout.prepare.
        mode=SaveMode.OVERWRITE,
    )


def _write_empty_shards(plan: JobPlan) -> None:
    """A zero-row shard with the right schema where nothing was written, so
    readers of data/ and rejected/ always find a readable dataset."""
    layout, cfg = plan.layout, plan.cfg
    targets = [
        (layout.data, _kept_documents),
        (layout.rejected, functools.partial(_rejected_documents, cfg=cfg)),
    ]
    if cfg.dedup.enabled:
        targets.append(
            (
                layout.duplicates,
                lambda _: DECISION_SCHEMA.empty_table().select(["id", "cluster_id", "kept"]),
            )
        )
    missing = [(path, make) for path, make in targets if not layout.list_parquet(path)]
    if not missing:
        return
    readable = [f for f in plan.files if f.problem is None]
    if readable:
        first = readable[0]
        with plan.source.fs.open(first.path, "rb") as handle:
            empty = pq.read_schema(handle).empty_table()
    else:  # every input file was quarantined
        first = plan.files[0]
        empty = pa.schema([(cfg.input.text_column, pa.string())]).empty_table()
    annotated = annotate_batch(prepare_table(empty, first, 0, cfg.input), cfg)
    for path, make in missing:
        layout.location.fs.makedirs(path, exist_ok=True)
        target = posixpath.join(path, "part-00000-0.parquet")
        pq.write_table(make(annotated), target, filesystem=layout.location.arrow_fs)


def _kept_dataset(staged: Staged) -> ray.data.Dataset:
    ds = staged.read(staged.document_columns())
    if staged.mixture is None:
        return ds.map_batches(_kept_documents, batch_format="pyarrow", batch_size=None)
    # Copies per the plan, then ordered by draw so every shard carries the mix.
    expanded = ds.map_batches(_kept_copies, batch_format="pyarrow", batch_size=None)
    ordered = expanded.sort([ORDER, staged.cfg.input.id_column])
    return ordered.map_batches(_drop_internal, batch_format="pyarrow", batch_size=None)


def _kept_copies(table: pa.Table) -> pa.Table:
    return expand_copies(col.kept_rows(table))


def _drop_internal(table: pa.Table) -> pa.Table:
    return table.select([n for n in table.column_names if not n.startswith(col.INTERNAL_PREFIX)])


def _kept_documents(table: pa.Table) -> pa.Table:
    return _drop_internal(col.kept_rows(table))


def _rejected_columns(cfg: JobConfig) -> list[str]:
    names = [cfg.input.id_column, col.STAGE, col.RULE, col.VALUE, col.REASON]
    return names + ([cfg.input.text_column] if cfg.output.rejected_text else [])


def _rejected_documents(table: pa.Table, cfg: JobConfig) -> pa.Table:
    rejected = table.filter(pc.is_valid(table.column(col.STAGE)))
    return rejected_table(
        cfg, rejected.column(cfg.input.id_column), rejected.column(col.STAGE),
        rejected.column(col.RULE), rejected.column(col.VALUE), rejected.column(col.REASON),
        rejected.column(cfg.input.text_column) if cfg.output.rejected_text else None,
    )  # fmt: skip


def _rows_per_shard(cfg: JobConfig, layout: OutputLayout, staging_files: list[str]) -> int:
    if cfg.output.bytes_per_shard is None:
        return cfg.output.rows_per_shard
    # Staged documents are zstd Parquet too: their bytes per row predict ours.
    rows, size = 0, 0
    for path in staging_files:
        rows += count_rows(layout.location, path)
        size += layout.location.fs.size(path)
    return (
        max(1, int(cfg.output.bytes_per_shard * rows / size)) if size else cfg.output.rows_per_shard
    )


__all__ = ["AccountingError", "JobPlan", "JobResult", "execute", "plan_job", "run_job"]
