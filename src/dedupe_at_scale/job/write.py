"""The write phase: one Ray Data pass over the staged files writes data/,
rejected/ and the per-block counts together, and the steps' selections of data/
(splits/<name>/, subsets/<pct>/) from the same rows, without reading data/.

Each read task applies the global decisions to one staged file, writes that
file's rejected rows to rejected/part-<file>-<k>.parquet and its counts (and
the steps' block summaries) to _staging/stats/, and passes the kept rows on to
Ray's Parquet writer for data/. Names depend only on the staged file, so a
retried task rewrites the same files. The counts are folded in tasks
(job/block_parts.py): the driver gets one part, not one per staged file.
"""

from __future__ import annotations

import functools
import posixpath
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import SaveMode
from ray.data.context import ShuffleStrategy
from ray.data.datasource import FilenameProvider

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.datasource import parquet_datasource, read_units
from dedupe_at_scale.io.fanout import fold_files
from dedupe_at_scale.io.output import file_counts
from dedupe_at_scale.io.quarantine import rejected_table
from dedupe_at_scale.io.storage import Location, read_json, write_json
from dedupe_at_scale.job.accounting import block_stats
from dedupe_at_scale.job.block_parts import PROFILE, STATS, SUMMARY, PartFold
from dedupe_at_scale.job.profile import ReportSpec, block_profile
from dedupe_at_scale.stages import field_stages
from dedupe_at_scale.steps import REGISTRY as STEPS

if TYPE_CHECKING:
    from dedupe_at_scale.config import JobConfig
    from dedupe_at_scale.io.inputs import ReadUnit
    from dedupe_at_scale.io.output import OutputLayout
    from dedupe_at_scale.io.staged import Staged
    from dedupe_at_scale.steps.base import GlobalStep, StepOutcome


class PartFilenames(FilenameProvider):
    """part-<task>.parquet: ordered, deterministic shard names."""

    def __init__(self, prefix: str = "part"):
        self.prefix = prefix

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"{self.prefix}-{task_index:05d}.parquet"


def write_parquet(
    ds: ray.data.Dataset, path: str, layout: OutputLayout, cfg: JobConfig,
    rows_per_file: int | None, prefix: str, cpus: float | None = None,
    rows_per_group: int | None = None,
) -> None:  # fmt: skip
    """`ds` as part-<task> files of `rows_per_file` rows (None: a file per
    block); `rows_per_group`: the rows a row group gathers (None: one per
    block, or per `rows_per_file`)."""
    ds.write_parquet(
        path,
        filesystem=layout.location.arrow_fs,
        filename_provider=PartFilenames(prefix),
        min_rows_per_file=rows_per_file,
        max_rows_per_file=rows_per_file,
        row_group_size=rows_per_group,
        compression=parquet_compression(cfg),
        # Our names are deterministic (no write UUID); the directory is ours
        # and was cleared by OutputLayout.prepare.
        mode=SaveMode.OVERWRITE,
        ray_remote_args={"num_cpus": cpus} if cpus is not None else None,
    )


def added_columns(cfg: JobConfig) -> dict[str, str]:
    """Each column the job adds to data/'s rows under `cfg`, with what adds it."""
    makers = [(f"the {s.name} stage", s) for s in field_stages(cfg)]
    makers += [(f"the {s.name} step", s) for s in _field_steps(cfg)]
    return {f.name: owner for owner, maker in makers for f in maker.fields(cfg)}


def step_fields(cfg: JobConfig) -> list[pa.Field]:
    """The columns the enabled global steps add to data/'s rows, in order."""
    return [f for step in _field_steps(cfg) for f in step.fields(cfg)]


def _field_steps(cfg: JobConfig) -> list[type[GlobalStep]]:
    return [step for step in STEPS if step.enabled(cfg)]


def write_outputs(
    staged: Staged, layout: OutputLayout, cfg: JobConfig, outcomes: dict[str, StepOutcome],
    rows_per_shard: int, columns: list[str],
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:  # fmt: skip
    """Write data/ (its `columns`, in order) and rejected/ in one pass; the
    per-block counts and each step's block summaries, merged over blocks."""
    stats_dir = posixpath.join(layout.staging_root, "stats")
    layout.location.fs.makedirs(stats_dir, exist_ok=True)
    layout.location.fs.makedirs(layout.rejected, exist_ok=True)
    summarized = {n: o for n, o in outcomes.items() if o.block_summary}
    report = ReportSpec.of(cfg) if cfg.output.report else None
    split = functools.partial(
        _split_block, location=layout.location, cfg=cfg, rejected_dir=layout.rejected,
        stats_dir=stats_dir, rows_per_shard=rows_per_shard,
        summaries={n: o.block_summary for n, o in summarized.items()}, report=report,
    )  # fmt: skip
    order_by = next((o.order_by for o in outcomes.values() if o.order_by), None)
    arrange = [o.arrange_kept for o in outcomes.values() if o.arrange_kept]
    # The same CPUs as the read, so that Ray fuses read, selection and write
    # into one task per staged file, as with whole cores.
    cpus = staged.task_cpus
    kept = staged.read(staged.document_columns(), then=split).map_batches(
        _kept_documents,
        fn_kwargs={"arrange": arrange, "columns": None if order_by else columns},
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=cpus,
    )
    if order_by:
        kept.context.shuffle_strategy = sort_strategy(
            len(staged.files), kept.context.shuffle_strategy
        )
        kept = kept.sort(order_by).map_batches(
            _select, fn_kwargs={"columns": columns}, batch_format="pyarrow", batch_size=None
        )
        # The sort's range boundaries are sampled at random: cut its output
        # into even shards instead (deterministic, each carrying the mix).
        kept = even_shards(kept, rows_per_shard)
    selections = [
        (name, keep) for outcome in outcomes.values() for name, keep in outcome.selections.items()
    ]
    if selections and not order_by:
        kept = kept.materialize()  # data/'s rows once, for data/ and every selection
    # Even shards are written as they are (a row bound would merge two). A
    # shard's rows make one row group, not one per block of the sort, whose
    # boundaries are sampled at random: the same bytes at every run.
    rows_per_file = None if order_by else rows_per_shard
    write_parquet(kept, layout.data, layout, cfg, rows_per_file, prefix="part",
                  cpus=None if order_by else cpus, rows_per_group=rows_per_shard)  # fmt: skip
    for name, keep in selections:
        rows = kept.map_batches(keep, batch_format="pyarrow", batch_size=None)
        path = posixpath.join(layout.publish_root, name)
        write_parquet(even_shards(rows, rows_per_shard), path, layout, cfg, None, prefix="part",
                      rows_per_group=rows_per_shard)  # fmt: skip
    fold = PartFold({n: o.block_summary_keys for n, o in summarized.items()}, report)
    return _read_stats(layout.location, stats_dir, len(staged.files), fold)


# Ray's default shuffle (SHUFFLE_V2 in 2.60) runs its map tasks in workers of
# their own runtime env, so every sort starts new processes: about 7 s on 2
# cores however few the rows. The pull-based sort reuses the job's workers but
# passes B * B objects for B blocks, each held by the driver (about 12 KB a
# ref, docs/scaling.md), so it serves small inputs only: 4,096 objects at 64.
PULL_SORT_MAX_BLOCKS = 64


def sort_strategy(blocks: int, configured: ShuffleStrategy) -> ShuffleStrategy:
    """The shuffle for sorting `blocks` blocks: pull-based while B * B objects
    stay cheap, the `configured` one (Ray's default, or the user's) above."""
    if blocks <= PULL_SORT_MAX_BLOCKS:
        return ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    return configured


def write_step_outputs(
    layout: OutputLayout, cfg: JobConfig, outcomes: dict[str, StepOutcome], rows_per_shard: int
) -> None:
    """Each step's own output (duplicates/, ...) from its decision files."""
    for outcome in outcomes.values():
        if outcome.output is not None:
            out = outcome.output
            counts = out.counts or file_counts(layout.location, out.files)
            source = parquet_datasource(
                layout.location, out.files, out.columns, counts=counts,
                rows_per_write=rows_per_shard,
            )  # fmt: skip
            ds = read_units(source)
            write_parquet(
                ds, posixpath.join(layout.publish_root, out.name), layout, cfg,
                rows_per_shard, prefix="part",
            )  # fmt: skip


def even_shards(ds: ray.data.Dataset, rows_per_shard: int) -> ray.data.Dataset:
    """`ds` in order, cut into the fewest blocks of at most rows_per_shard
    rows, all of about one size (one shard each). Materialized first, so
    counting and cutting read it once."""
    ds = ds.materialize()
    return ds.repartition(max(1, -(-ds.count() // rows_per_shard)))


def _split_block(
    unit: ReadUnit, table: pa.Table, *, location: Location, cfg: JobConfig, rejected_dir: str,
    stats_dir: str, rows_per_shard: int, summaries: dict, report: ReportSpec | None,
) -> pa.Table:  # fmt: skip
    """Write the block's rejected rows and counts; pass every row on (the
    write of data/ then bundles blocks by their rows, as it always did)."""
    rejected = table.filter(pc.is_valid(table.column(col.STAGE)))
    for k, start in enumerate(range(0, rejected.num_rows, rows_per_shard)):
        piece = rejected.slice(start, rows_per_shard)
        path = posixpath.join(rejected_dir, f"part-{unit.index:05d}-{k}.parquet")
        pq.write_table(
            _rejected_rows(piece, cfg), path, filesystem=location.arrow_fs,
            compression=parquet_compression(cfg),
        )  # fmt: skip
    stats = block_stats(table).to_pylist()
    summary = {name: make(table) for name, make in summaries.items()}
    if report is not None:
        summary[PROFILE] = [block_profile(table, cfg, report)]
    # Compact: only the fold reads it (121 KB against 316 indented, real text).
    part = {STATS: stats, SUMMARY: summary}
    write_json(location, _stats_path(stats_dir, unit.index), part, indent=None)
    return table


def _kept_documents(table: pa.Table, arrange: list, columns: list[str] | None) -> pa.Table:
    """The kept rows, arranged by the steps (copies), in data/'s `columns`;
    all columns (None) while the output still has to be ordered by them."""
    kept = col.kept_rows(table)
    for step in arrange:
        kept = step(kept)
    return kept if columns is None else _select(kept, columns)


def _read_stats(
    location: Location, stats_dir: str, n_files: int, fold: PartFold
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The staged files' parts, folded in tasks: stats rows and summaries."""
    paths = [_stats_path(stats_dir, f) for f in range(n_files)]
    part = fold_files(location, paths, read_json, fold)
    return part[STATS], part[SUMMARY]


def _stats_path(stats_dir: str, index: int) -> str:
    return posixpath.join(stats_dir, f"block-{index:05d}.json")


def _rejected_rows(rejected: pa.Table, cfg: JobConfig) -> pa.Table:
    return rejected_table(
        cfg, rejected.column(cfg.input.id_column), rejected.column(col.STAGE),
        rejected.column(col.RULE), rejected.column(col.VALUE), rejected.column(col.REASON),
        rejected.column(cfg.input.document_column) if cfg.output.rejected_text else None,
        source=(rejected.column(col.FILE), rejected.column(col.ROW)),
    )  # fmt: skip


def _select(table: pa.Table, columns: list[str]) -> pa.Table:
    return table.select(columns)


def parquet_compression(cfg: JobConfig) -> str | None:
    return None if cfg.output.compression == "none" else cfg.output.compression
