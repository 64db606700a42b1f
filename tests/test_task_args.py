"""What a task reading one staged file carries to its worker does not grow
with the number of staged files: each read task (Ray Data's, put in the
object store one by one) and each StagedFile a step's task takes holds its
own file's decision files only, dedup's file indexes travel by
reference, as do the mixture's capped domains, and an annotate read task
takes the input schema without the manifest's list of files whose types
changed. Carrying every file's would make a pass's task arguments grow
with the square of the staged files (benchmarks/task_args.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray import cloudpickle

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.datasource import file_units, input_datasource
from dedupe_at_scale.io.schema import InputSchema
from dedupe_at_scale.io.staged import (
    Decision,
    DecisionFiles,
    StagedSource,
    read_staged,
)
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.steps.base import StagedView
from dedupe_at_scale.steps.dedup.edges import FileIndex, file_indexes


def _drop_marked(index: int, table: pa.Table, decided: pa.Table | None) -> pa.Table:
    if decided is None:
        return table
    gone = pa.compute.is_in(table.column(col.UID), decided.column(col.UID))
    return table.filter(pa.compute.invert(gone))


def _staged(tmp_path, n: int) -> tuple[list[str], Decision]:
    """`n` staged-file paths and a decision with a file for each."""
    location = resolve(str(tmp_path))
    paths = [str(tmp_path / f"annotated-{i:010d}.parquet") for i in range(n)]
    files = DecisionFiles(
        location, tuple(str(tmp_path / f"dedup-{i:05d}.parquet") for i in range(n)),
        tuple(range(10_000, 10_000 + n)),
    )  # fmt: skip
    return paths, Decision(_drop_marked, files=files)


def _read_task_bytes(tmp_path, n: int, index: int) -> int:
    paths, decision = _staged(tmp_path, n)
    location = resolve(str(tmp_path))
    units = file_units(location, paths, {p: (100, 1_000) for p in paths})
    tasks = StagedSource(location, units, None, [decision], None).get_read_tasks(1)
    return len(cloudpickle.dumps(tasks[index]))


def _staged_file_bytes(tmp_path, n: int, index: int) -> int:
    paths, decision = _staged(tmp_path, n)
    view = StagedView(
        cfg=None, location=resolve(str(tmp_path)), paths=tuple(paths), columns=(col.UID,),
        decisions_dir=str(tmp_path), partitions=1, has_ids=False, decisions=(decision,),
    )  # fmt: skip
    return len(cloudpickle.dumps(view.files[index]))


def test_a_read_task_carries_its_own_files_decisions_only(tmp_path):
    # With every file's decision paths it was 55.6 KiB at 1,000 staged files.
    small, large = _read_task_bytes(tmp_path, 10, 7), _read_task_bytes(tmp_path, 2_000, 7)
    assert large - small < 64, (small, large)
    assert _staged_file_bytes(tmp_path, 2_000, 7) - _staged_file_bytes(tmp_path, 10, 7) < 64


def _annotate_task_bytes(tmp_path, n: int) -> int:
    """An annotate read task's pickle when `n` input files had their types changed."""
    location = resolve(str(tmp_path))
    paths = [str(tmp_path / f"part-{i:05d}.parquet") for i in range(n)]
    schema = InputSchema(
        pa.schema([("id", pa.string()), ("n", pa.int64())]), ["id", "text", "n"],
        promoted={f"part-{i:05d}.parquet": {"n": "int32 -> int64"} for i in range(n)},
    )  # fmt: skip
    units = file_units(location, paths, {p: (100, 1_000) for p in paths})
    source = input_datasource(location, units, config_from_dict({}).input, schema)
    source.units_per_task = 1  # as at 10 files: only the promoted files may differ
    return len(cloudpickle.dumps(source.get_read_tasks(1)[7]))


def test_an_annotate_task_leaves_the_promoted_files_to_the_manifest(tmp_path):
    # With InputSchema.promoted in every task: 58 KB at 2,000 such files, 2.5 at 10.
    assert _annotate_task_bytes(tmp_path, 2_000) - _annotate_task_bytes(tmp_path, 10) < 64


def test_a_narrowed_decision_reads_as_the_whole_one(tmp_path):
    location = resolve(str(tmp_path))
    paths, decisions = [], []
    for i in range(3):
        path = str(tmp_path / f"s{i}.parquet")
        pq.write_table(pa.table({col.UID: pa.array(range(i * 10, i * 10 + 10), pa.int64())}), path)
        pq.write_table(pa.table({col.UID: pa.array([i * 10 + 3], pa.int64())}),
                       str(tmp_path / f"d{i}.parquet"))  # fmt: skip
        paths.append(path)
    files = DecisionFiles(location, tuple(str(tmp_path / f"d{i}.parquet") for i in range(3)))
    decisions = [Decision(_drop_marked, files=files)]
    for i, path in enumerate(paths):
        whole = read_staged(location, path, None, decisions, i)
        own = read_staged(location, path, None, [d.for_file(i) for d in decisions], i)
        assert own.equals(whole)
        assert whole.num_rows == 9 and i * 10 + 3 not in whole.column(col.UID).to_pylist()


def test_dedups_file_indexes_travel_by_reference(ray_cluster):
    ranges = [[(0, 9), (10, 19)], [(20, 29)]]
    staged, groups = file_indexes([ray.put(r) for r in ranges])
    assert isinstance(staged, ray.ObjectRef) and isinstance(groups, ray.ObjectRef)
    index = ray.get(groups)
    assert isinstance(index, FileIndex)
    assert np.array_equal(index.files, [0, 0, 1])


def _mixture_rows() -> pa.Table:
    ids = [f"doc-{i}" for i in range(200)]
    return pa.table({
        "id": ids, "source": ["web"] * 200, "domain": [f"site{i % 7}.example" for i in range(200)],
        col.STAGE: pa.nulls(200, pa.string()), col.RULE: pa.nulls(200, pa.string()),
        col.VALUE: pa.nulls(200, pa.float64()), col.REASON: pa.nulls(200, pa.string()),
    })  # fmt: skip


def test_the_mixtures_capped_domains_travel_by_reference(ray_cluster):
    from dedupe_at_scale.steps.domain_caps import DomainCuts, cut_table
    from dedupe_at_scale.steps.mixture import apply_plan, plan_decision

    cfg = config_from_dict({"mixture": {"enabled": True, "max_per_domain": 10}}).mixture
    columns = ("id", "source", "domain")

    def decision(domains: int) -> Decision:
        table = cut_table({f"site{i}.example": (0.5, 100.0) for i in range(domains)})
        return plan_decision(cfg, {}, "id", DomainCuts(ray.put(table), domains, ()), columns)

    # With the cuts in the decision: 429 KB at 20,000 capped domains.
    assert len(cloudpickle.dumps(decision(20_000))) - len(cloudpickle.dumps(decision(3))) < 64
    rows, cuts = _mixture_rows(), {f"site{i}.example": (0.5, 100.0) for i in range(3)}
    applied = decision(3).apply(0, rows)
    assert applied.equals(apply_plan(rows, cfg, {}, "id", cut_table(cuts)))
    assert 0 < pa.compute.sum(pa.compute.is_valid(applied[col.STAGE])).as_py() < 200
