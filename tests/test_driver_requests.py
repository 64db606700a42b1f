"""The driver plans and coordinates: after planning it opens no file per
staged unit, per written shard or per block (footers, stats, moves are read
or done in Ray tasks), so what it opens does not grow with the files."""

from __future__ import annotations

import re

import pytest
from fsspec.implementations.local import LocalFileSystem

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import execute, plan_job
from dedupe_at_scale.sample import generate_sample

PER_FILE = re.compile(r"_staging/(annotated/annotated-|publish/.*\.parquet$|stats/block-)")


def driver_opens(monkeypatch, root, out) -> list[str]:
    """Paths the driver opened while executing the plan (Ray workers are
    other processes: the patch does not reach them)."""
    plan = plan_job(str(root), str(out), config_from_dict({}))
    opened: list[str] = []
    original = LocalFileSystem._open

    def recording(self, path, *args, **kwargs):
        opened.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", recording)
    try:
        execute(plan)
    finally:
        monkeypatch.setattr(LocalFileSystem, "_open", original)
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
        counts[shards] = len(opened)
    assert counts[32] == counts[4], counts
