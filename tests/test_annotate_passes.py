"""The annotate phase runs its read units through Ray Data in passes of at
most `units_per_pass` (each pass holds driver memory per read task until it
ends, docs/scaling.md); how many passes it takes does not change the output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job import annotate
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

OUTPUTS = ("data", "rejected", "duplicates")


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for name in OUTPUTS
        for p in sorted((root / name).rglob("*.parquet"))
    }


def test_units_per_pass_follows_the_cluster_above_a_floor():
    assert annotate.units_per_pass(2) == annotate.MIN_UNITS_PER_PASS
    big = 10 * annotate.MIN_UNITS_PER_PASS // annotate.UNITS_PER_PASS_PER_CPU
    assert annotate.units_per_pass(big) == 10 * annotate.MIN_UNITS_PER_PASS


def test_same_output_bytes_in_one_pass_or_several(ray_cluster, sample_dir, tmp_path, monkeypatch):
    cfg = config_from_dict({})
    passes: list[int] = []
    read_units = annotate.read_units

    def counted(source, **kwargs):
        passes.append(len(source.units))
        return read_units(source, **kwargs)

    monkeypatch.setattr(annotate, "read_units", counted)
    digests = []
    for floor in (annotate.MIN_UNITS_PER_PASS, 3):
        monkeypatch.setattr(annotate, "MIN_UNITS_PER_PASS", floor)
        monkeypatch.setattr(annotate, "UNITS_PER_PASS_PER_CPU", 0)
        passes.clear()
        out = tmp_path / f"out{floor}"
        result = run_job(str(sample_dir), str(out), cfg)
        units = result.manifest["annotate"]["units"]
        assert sum(passes) == units
        assert len(passes) == -(-units // floor)
        digests.append(file_digests(out))
    assert units == 8  # one per shard of the sample: three passes of 3
    assert digests[0] and digests[1] == digests[0]
