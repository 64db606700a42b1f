"""The driver plans and coordinates: after planning it opens no file per
staged unit, per written shard or per block (footers, stats, moves are read
or done in Ray tasks), so what it opens does not grow with the files; and
past a file count, planning reads the input footers in tasks too. Tasks
over many small files of an object store ask for a fraction of a CPU."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io import fanout
from dedupe_at_scale.io.storage import Location, resolve
from dedupe_at_scale.job.pipeline import execute
from dedupe_at_scale.job.plan import plan_job
from dedupe_at_scale.sample import generate_sample

PER_FILE = re.compile(r"_staging/(annotated/annotated-|publish/.*\.parquet$|stats/block-)")
# The lease is renewed on a timer (io/lease.py): its opens grow with the run's
# time, not its files (a slow machine once made the 4-shard run open it twice more).
LEASE = re.compile(r"_staging/lease\.(json|lock)$")


@contextlib.contextmanager
def recording_opens(monkeypatch) -> Iterator[list[str]]:
    """Paths this process opens on local disk inside the block (Ray workers
    are other processes: the patch does not reach them)."""
    opened: list[str] = []
    original = LocalFileSystem._open

    def recording(self, path, *args, **kwargs):
        opened.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", recording)
    try:
        yield opened
    finally:
        monkeypatch.setattr(LocalFileSystem, "_open", original)


def driver_opens(monkeypatch, root, out) -> list[str]:
    """Paths the driver opened while executing the plan."""
    plan = plan_job(str(root), str(out), config_from_dict({}))
    with recording_opens(monkeypatch) as opened:
        execute(plan)
    return opened


@pytest.mark.timeout(400)
def test_the_driver_opens_no_file_per_unit_or_shard(ray_cluster, monkeypatch, tmp_path):
    counts = {}
    for shards in (4, 32):
        root = tmp_path / f"in-{shards}"
        generate_sample(root, docs=1600, shards=shards, seed=3)
        opened = driver_opens(monkeypatch, root, tmp_path / f"out-{shards}")
        per_file = [p for p in opened if PER_FILE.search(p)]
        # One staged file is opened for the schema; nothing else per file.
        assert len(per_file) <= 1, per_file[:5]
        assert any(LEASE.search(p) for p in opened)  # the filter below sees the lease
        counts[shards] = len([p for p in opened if not LEASE.search(p)])
    assert counts[32] == counts[4], counts


def _inputs_with_problems(root):
    generate_sample(root, docs=300, shards=6, seed=4)
    (root / "zz-empty.parquet").write_bytes(b"")
    (root / "zz-truncated.parquet").write_bytes((root / "shard-00000.parquet").read_bytes()[:300])


@pytest.mark.timeout(300)
def test_input_footers_are_read_in_tasks_past_a_file_count(ray_cluster, monkeypatch, tmp_path):
    """Past inputs.FOOTERS_IN_TASKS files (here lowered to 0) the footers are
    read in Ray tasks: the driver opens no input file, and the files it
    plans with (rows, row groups, schemas, quarantined problems) equal those
    read here in threads; an invalid file is the same one-line error."""
    from dedupe_at_scale.config import InputConfig
    from dedupe_at_scale.io import inputs
    from dedupe_at_scale.io.storage import list_input_files, resolve

    root = tmp_path / "in"
    _inputs_with_problems(root)
    location = resolve(str(root))
    listing = list_input_files(location)
    quarantine = InputConfig(on_invalid_file="quarantine")

    def inspected(threshold: int, cfg: InputConfig) -> tuple[list, list[str]]:
        monkeypatch.setattr(inputs, "FOOTERS_IN_TASKS", threshold)
        with recording_opens(monkeypatch) as opened:
            files = inputs.inspect_files(location, listing, cfg)
        return files, opened

    here, opened_here = inspected(10**6, quarantine)
    in_tasks, opened_by_driver = inspected(0, quarantine)
    assert len(opened_here) == len(listing.files) - 1  # the empty file is never opened
    assert opened_by_driver == []
    assert in_tasks == here
    assert [f.schema for f in in_tasks] == [f.schema for f in here]
    assert sorted(f.problem[0] for f in here if f.problem) == ["empty_file", "not_parquet"]

    errors = []
    for threshold in (10**6, 0):
        with pytest.raises(inputs.InputError) as caught:
            inspected(threshold, InputConfig())
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "zz-empty.parquet: file is empty" in errors[0] and "\n" not in errors[0]


def test_planning_joins_ray_first_only_past_the_file_count(monkeypatch, tmp_path):
    """The CLI hands plan_job its connect: called before the footers are read
    when the input has more than FOOTERS_IN_TASKS files, else not at all (a
    bad file in a small input is reported before Ray starts)."""
    from dedupe_at_scale.job import plan as planning

    root = tmp_path / "in"
    generate_sample(root, docs=90, shards=3, seed=2)
    joined: list[int] = []
    for threshold, out in ((planning.FOOTERS_IN_TASKS, "small"), (2, "large")):
        monkeypatch.setattr(planning, "FOOTERS_IN_TASKS", threshold)
        plan = plan_job(
            str(root), str(tmp_path / out), config_from_dict({}), connect=lambda: joined.append(1)
        )
        plan.lease.release()
        assert len(plan.files) == 3
        assert joined == ([] if out == "small" else [1])


def test_tasks_over_many_small_remote_files_take_a_fraction_of_a_cpu(tmp_path):
    remote = Location("s3://bucket/out", fsspec.filesystem("memory"), "bucket/out")
    local = resolve(str(tmp_path))
    small, large = [1 << 20] * fanout.MANY_FILES, [64 << 20] * fanout.MANY_FILES
    assert fanout.file_task_cpus(remote, small) == fanout.TASK_CPUS < 1
    # Few files, large files, or local disk: starting extra workers would not pay.
    assert fanout.file_task_cpus(remote, small[:-1]) == 1.0
    assert fanout.file_task_cpus(remote, large) == 1.0
    assert fanout.file_task_cpus(local, small) == 1.0
    assert fanout.file_task_cpus(remote, []) == 1.0
