"""The job as a list of phases on Ray (with io/staged.py, job/annotate.py and
job/write.py, the only modules that build Ray datasets).

  1. plan      config, output and every input footer, before Ray starts
               (job/plan.py; past FOOTERS_IN_TASKS files, in Ray tasks)
  2. annotate  read shards -> the registered per-document stages (stages/),
               fused into one task for up to 16 read units, each staged whole to
               OUT/_staging/annotated/ (job/annotate.py); a re-run keeps them
  3. global    the registered global steps, in the order of steps/__init__.py's
               REGISTRY; each returns a decision the staged reader applies
  4. write     one pass: data/, rejected/, the per-block counts and the
               report's data (job/write.py); each step's own output
  5. account   input = kept + rejected, checked from the counts and the shards;
               then index/, the shards holding each id (job/id_index.py)
  6. commit    seal, publish, manifest.json last (io/output.py)
A failed run never writes a manifest, and the manifest is the marker of a
complete output; io/output.py has the commit protocol and what a re-run resumes.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.lease import LeaseLostError
from dedupe_at_scale.io.quarantine import rejected_schema, write_quarantined_files
from dedupe_at_scale.io.rows import prepare_table
from dedupe_at_scale.io.staged import Staged
from dedupe_at_scale.job.accounting import AccountingError, check_accounting, quarantine_stats
from dedupe_at_scale.job.annotate import SharedResources, annotate, reusable_units, staged_name
from dedupe_at_scale.job.block_parts import PROFILE
from dedupe_at_scale.job.id_index import INDEX, build_index
from dedupe_at_scale.job.manifest import build_manifest
from dedupe_at_scale.job.phase_times import PhaseTimes
from dedupe_at_scale.job.plan import JobPlan, plan_job
from dedupe_at_scale.job.profile import ReportSpec, merge_profiles
from dedupe_at_scale.job.ray_settings import configure_ray_data
from dedupe_at_scale.job.report_html import DATA as REPORT_DATA
from dedupe_at_scale.job.report_html import HTML as REPORT_HTML
from dedupe_at_scale.job.report_html import write_report
from dedupe_at_scale.job.write import step_fields, write_outputs, write_step_outputs
from dedupe_at_scale.stages import annotated_fields
from dedupe_at_scale.steps import REGISTRY as STEP_REGISTRY
from dedupe_at_scale.steps import cluster_checks
from dedupe_at_scale.steps.base import StagedView, StepOutcome, partition_count

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.inputs import ReadUnit
    from dedupe_at_scale.io.output import OutputLayout
    from dedupe_at_scale.job.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    manifest: dict[str, Any]
    output_uri: str
    timings: dict[str, float] = field(default_factory=dict)


def run_job(input_uri: str, output_uri: str, cfg: JobConfig, overwrite: bool = False) -> JobResult:
    """Plan and execute on the Ray cluster this process is connected to."""
    return execute(plan_job(input_uri, output_uri, cfg, overwrite))


def execute(plan: JobPlan, progress: Progress | None = None) -> JobResult:
    """Run a plan on the Ray cluster this process is connected to; with
    `progress`, say on the terminal how each phase goes."""
    try:
        return _execute(plan, progress)
    except KeyboardInterrupt:
        # The lease renewer interrupts the run when another run took over.
        if plan.lease is not None and plan.lease.lost is not None:
            raise plan.lease.lost from None
        raise
    except Exception:
        # A run whose lease was taken may first fail on what the other run
        # moved (its staged files), before the renewer looks: the lease says why.
        _raise_if_lease_lost(plan)
        raise
    finally:
        if plan.lease is not None:
            plan.lease.release()


def _raise_if_lease_lost(plan: JobPlan) -> None:
    if plan.lease is None:
        return
    try:
        plan.lease.check()
    except LeaseLostError as lost:
        raise lost from None
    except Exception:  # the lease cannot be read: the run's own error stands
        return


def _execute(plan: JobPlan, progress: Progress | None) -> JobResult:
    started = time.time() - plan.planning_seconds
    # Planning includes preparing; each is reported on its own.
    times = PhaseTimes(plan=round(plan.planning_seconds - plan.prepare_seconds, 3))
    if progress is not None:
        progress.phase_done("plan", plan.planning_seconds)
    cfg, source, layout, files = plan.cfg, plan.source, plan.layout, plan.files

    if plan.resume == "publish":
        # An interrupted run already sealed this output: only publishing is left.
        ready = layout.read_ready()
        layout.publish(ready, *_fence(plan))
        return JobResult(ready["manifest"], plan.output_uri, times.wall)

    configure_ray_data(ray.data.DataContext.get_current())

    if plan.shared:
        times.wall["prepare"] = plan.prepare_seconds
    with times.phase("annotate", progress):
        # Every re-run checks each staged file (footer, rows) against its
        # unit, whatever phase the interrupted run reached, and annotates
        # again only the units that fail.
        reuse = reusable_units(layout, plan.units) if plan.resume != "none" else set()
        todo = [u for u in plan.units if u.index not in reuse and u.num_rows > 0]
        if todo:
            fence = plan.lease.fence if plan.lease is not None else None
            resources = SharedResources.put(plan.shared)
            documents = sum(u.num_rows for u in todo)
            with progress.units(len(todo), documents) if progress else nullcontext() as counter:
                annotate(plan.source, layout, todo, cfg, plan.input_schema, resources, fence,
                         counter)  # fmt: skip
        if todo or plan.resume != "annotated":
            layout.mark_annotated(_fence(plan)[0])
        reused = len(reuse)

    staged = staged_files(layout, plan.units)
    outcomes = _run_global_steps(plan, staged, times, progress)

    with times.phase("write", progress):
        rows_per_shard = _rows_per_shard(cfg, staged)
        stats, summaries = (
            write_outputs(
                staged, layout, cfg, outcomes, rows_per_shard, data_schema(plan, staged).names
            )
            if staged.files
            else ([], {})
        )
        write_quarantined_files(source, files, layout.location, layout.rejected, cfg)
        write_step_outputs(layout, cfg, outcomes, rows_per_shard)
        _write_empty_shards(plan, staged)

    with times.phase("account", progress):
        stats += quarantine_stats(files)
        reports = _step_reports(outcomes, summaries, stats)
        data_shards = layout.describe_shards("data")
        rejected_shards = layout.describe_shards("rejected")
        # Every step's outputs are listed; those of steps that are off as [].
        step_shards = {
            name: layout.describe_shards(name) if step.enabled(cfg) else []
            for step in STEP_REGISTRY
            for name in step.outputs(cfg)
        }
        check_accounting(files, stats, data_shards, rejected_shards)
        check_step_outputs(cfg, data_shards, step_shards)
    listed = {"data": data_shards, "rejected": rejected_shards, **step_shards}
    if cfg.output.index:
        with times.phase("index", progress):
            index = build_index(layout, cfg, listed)

    times.wall["total"] = time.time() - started
    manifest = build_manifest(
        cfg=cfg,
        input_uri=plan.input_uri,
        output_uri=plan.output_uri,
        files=files,
        stats=stats,
        data_shards=data_shards,
        rejected_shards=rejected_shards,
        step_shards=step_shards,
        steps=reports,
        times=times,
        started=started,
    )
    if plan.input_schema is not None:
        manifest["input_schema"] = plan.input_schema.describe()
    manifest["input"]["skipped"] = skipped_section(plan.skipped)
    # report.html and the histograms it is built from, beside the manifest.
    report_files = []
    if cfg.output.report:
        manifest["output"]["report"] = {"html": REPORT_HTML, "data": REPORT_DATA}
        profile = merge_profiles(summaries.get(PROFILE, []), ReportSpec.of(cfg))
        report_files = write_report(layout.location, layout.publish_root, manifest, profile)
    # What an interrupted run of the same job had finished already.
    manifest["resumed_after"] = "annotate" if plan.resume == "annotated" and not todo else None
    # Units whose staged rows an interrupted run of the same job left whole.
    manifest["annotate"] = {"units": len(plan.units), "units_reused": reused}
    shards = [s["path"] for found in listed.values() for s in found] + report_files
    if cfg.output.index:
        manifest["output"][INDEX] = index
        shards += [s["path"] for s in index["files"]]
    with times.phase("publish", progress):
        fence, release = _fence(plan)
        sealed = layout.seal(shards, manifest, fence)
        layout.publish(sealed, fence, release)  # removes _staging/ once released
    return JobResult(manifest=manifest, output_uri=plan.output_uri, timings=times.wall)


def _fence(plan: JobPlan) -> tuple[Callable[[], None], Callable[[], None]]:
    """The lease's check (before each commit step) and its release (once
    the manifest is written); no-ops for a plan without a lease."""
    if plan.lease is None:
        return (lambda: None), (lambda: None)
    return plan.lease.check, plan.lease.release


def _run_global_steps(
    plan: JobPlan, staged: Staged, times: PhaseTimes, progress: Progress | None = None
) -> dict[str, StepOutcome]:
    """The registered global steps in order, each seeing the decisions of
    those before it; their decisions go to the staged reader."""
    if not staged.files:
        return {}
    cfg = plan.cfg
    view = StagedView(
        cfg=cfg,
        location=plan.layout.location,
        paths=tuple(staged.files),
        sizes=staged.sizes,
        columns=tuple(staged.schema_names()),
        decisions_dir=plan.layout.decisions,
        partitions=cfg.dedup.partitions or partition_count(sum(f.num_rows for f in plan.files)),
        has_ids=any(f.has_id for f in plan.files),
        # The prepared resources' summaries, for steps that report on them
        # (contamination on the decontamination index).
        prepared={
            name: resource.summary
            for name, resource in plan.shared.items()
            if hasattr(resource, "summary")
        },
        cluster_checks=cluster_checks(cfg),
    )
    outcomes: dict[str, StepOutcome] = {}
    for step in STEP_REGISTRY:
        if not step.enabled(cfg):
            continue
        with times.phase(step.name):
            outcome = step().run(view)
        if outcome is None:
            times.drop(step.name)
            continue
        if progress is not None:
            progress.phase_done(step.name, times.wall[step.name])
        outcomes[step.name] = outcome
        if outcome.decision is not None:
            view = view.with_decision(outcome.decision)
    staged.decisions = list(view.decisions)
    return outcomes


def _step_reports(
    outcomes: dict[str, StepOutcome],
    summaries: dict[str, list[dict[str, Any]]],
    stats: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Each step's manifest section, finished with what the write pass counted."""
    reports = {}
    for step in STEP_REGISTRY:
        outcome = outcomes.get(step.name)
        if outcome is None:
            continue
        rules: dict[str, int] = {}
        for row in stats:
            if row[col.STAGE] == step.stage:
                rules[row[col.RULE]] = rules.get(row[col.RULE], 0) + row["count"]
        reports[step.name] = outcome.finish(outcome.report, summaries.get(step.name, []), rules)
    return reports


def check_step_outputs(
    cfg: JobConfig, data_shards: list[dict[str, Any]], step_shards: dict[str, list[dict[str, Any]]]
) -> None:
    """Each enabled step's check of what it published (GlobalStep.check_outputs)."""
    data = sum(s["rows"] for s in data_shards)
    for step in STEP_REGISTRY:
        if step.enabled(cfg):
            mine = {name: step_shards.get(name, []) for name in step.outputs(cfg)}
            problem = step.check_outputs(cfg, data, mine)
            if problem is not None:
                raise AccountingError(f"output not committed: {problem}")


def step_outputs(cfg: JobConfig) -> dict[str, pa.Schema | None]:
    """The directories the enabled global steps publish, with their schemas."""
    return {
        name: schema
        for step in STEP_REGISTRY if step.enabled(cfg)
        for name, schema in step.outputs(cfg).items()
    }  # fmt: skip


def _write_empty_shards(plan: JobPlan, staged: Staged) -> None:
    """A zero-row shard with the right schema where nothing was written, so
    readers of data/, rejected/ and the steps' outputs always find a readable
    dataset. The schemas come from the staged files or the stage declarations:
    no stage runs here."""
    layout, cfg = plan.layout, plan.cfg
    targets = [
        (layout.data, data_schema(plan, staged)),
        (layout.rejected, rejected_schema(cfg)),
    ]
    targets += [
        (posixpath.join(layout.publish_root, name), schema or data_schema(plan, staged))
        for name, schema in step_outputs(cfg).items()
    ]
    for path, schema in targets:
        if not layout.list_parquet(path):
            layout.location.fs.makedirs(path, exist_ok=True)
            target = posixpath.join(path, "part-00000-0.parquet")
            pq.write_table(schema.empty_table(), target, filesystem=layout.location.arrow_fs)


def skipped_section(skipped: dict[str, str], listed: int = 100) -> dict[str, Any]:
    """The paths under the input that were not read: how many, why, and the
    first `listed` of them (a Spark lake has a .crc beside every file)."""
    return {
        "count": len(skipped),
        "by_reason": dict(Counter(skipped.values()).most_common()),
        "paths": dict(list(skipped.items())[:listed]),
    }


def data_schema(plan: JobPlan, staged: Staged) -> pa.Schema:
    """The documents' schema in data/: the staged one (or, when nothing was
    staged, the input's with the stages' fields) without internal columns,
    then the columns the steps add."""
    schema = staged.schema
    if schema is None:
        readable = [f for f in plan.files if f.problem is None]
        text = plan.cfg.input.document_column
        if readable:
            first = readable[0]
            with plan.source.fs.open(first.path, "rb") as handle:
                empty = pq.read_schema(handle).empty_table()
        else:  # every input file was quarantined
            first = plan.files[0]
            empty = pa.schema([(text, pa.string())]).empty_table()
        prepared = prepare_table(empty, first, 0, plan.cfg.input, schema=plan.input_schema)
        schema = pa.schema([*prepared.schema, *annotated_fields(plan.cfg)])
    fields = [f for f in schema if not f.name.startswith(col.INTERNAL_PREFIX)]
    return pa.schema(fields + step_fields(plan.cfg))


def staged_files(layout: OutputLayout, units: list[ReadUnit]) -> Staged:
    """The staged files, with their rows (their units') and bytes (the
    listing's): one listing, and no file opened on the driver."""
    sizes = layout.parquet_sizes(layout.staging)
    rows = {posixpath.join(layout.staging, staged_name(u.index)): u.num_rows for u in units}
    missing = [p for p in sizes if p not in rows]
    if missing:  # annotate() stages exactly one file per unit with rows
        raise AccountingError(f"output not committed: {missing[0]} is not a staged unit")
    return Staged(layout, list(sizes), {p: (rows[p], size) for p, size in sizes.items()})


def _rows_per_shard(cfg: JobConfig, staged: Staged) -> int:
    if cfg.output.bytes_per_shard is None:
        return cfg.output.rows_per_shard
    # Staged documents are zstd Parquet too: their bytes per row predict ours.
    rows, size = map(sum, zip(*staged.counts.values())) if staged.counts else (0, 0)
    return (
        max(1, int(cfg.output.bytes_per_shard * rows / size)) if size else cfg.output.rows_per_shard
    )


__all__ = ["AccountingError", "JobPlan", "JobResult", "execute", "plan_job", "run_job"]
