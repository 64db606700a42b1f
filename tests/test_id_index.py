"""index/ (job/id_index.py): every distinct key of every shard, in the part
its hash names; `trace` reads one part and only the shards it names, and
says the same as a trace that reads every shard."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import EVERY_DIRECTORY
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io import finished
from dedupe_at_scale.job import id_index
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.trace import trace

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def entries_by_reading_every_shard(out: Path, manifest: dict) -> set[tuple[str, str, str]]:
    """The reference: (key, directory, shard) for each key column of each shard."""
    found = set()
    for directory, shards in manifest["output"].items():
        if not isinstance(shards, list):
            continue
        for shard in shards:
            table = pq.read_table(out / shard["path"])
            for column in ("id", "cluster_id"):
                if column in table.column_names:
                    values = pc.cast(table.column(column), pa.string()).to_pylist()
                    found |= {(v, directory, shard["path"]) for v in values if v is not None}
    return found


def test_index_holds_every_key_and_trace_reads_only_its_shards(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(id_index, "ENTRIES_PER_PART", 1_000)  # several parts
    indexed, plain = tmp_path / "indexed", tmp_path / "plain"
    # Through mailboxes (what a large index uses), the plain run through objects.
    mailboxes = {**EVERY_DIRECTORY, "dedup": {"exchange": "mailboxes"}}
    run_job(str(sample_dir), str(indexed), config_from_dict(mailboxes))
    off = {**EVERY_DIRECTORY, "output": {**EVERY_DIRECTORY["output"], "index": False}}
    run_job(str(sample_dir), str(plain), config_from_dict(off))

    manifest = json.loads((indexed / "manifest.json").read_text())
    index = manifest["output"]["index"]
    assert index["parts"] > 3 and len(index["files"]) == index["parts"]
    entries = set()
    for part, listed in enumerate(index["files"]):
        rows = pq.read_table(indexed / listed["path"])
        assert rows.num_rows == listed["rows"]
        keys = rows.column("key")
        assert keys.to_pylist() == sorted(keys.to_pylist())  # a lookup reads one row group
        assert set(id_index.part_of(keys.combine_chunks(), index["parts"]).tolist()) <= {part}
        entries |= {(r["key"], r["directory"], r["shard"]) for r in rows.to_pylist()}
    assert entries == entries_by_reading_every_shard(indexed, manifest)
    assert not (plain / "index").exists()
    assert "index" not in json.loads((plain / "manifest.json").read_text())["output"]
    assert pq.read_table(plain / "data").equals(pq.read_table(indexed / "data"))

    read: list[str] = []
    real_find_rows = finished.find_rows

    def recording(location, paths, *args, **kwargs):
        read.extend(paths)
        return real_find_rows(location, paths, *args, **kwargs)

    monkeypatch.setattr(finished, "find_rows", recording)
    monkeypatch.setattr(id_index, "find_rows", recording)
    rejected = pq.read_table(indexed / "rejected").to_pylist()
    data = pq.read_table(indexed / "data").to_pylist()
    copied = next(r["id"] for r in data if r["mixture_repeat"] > 0)
    near = next(r["id"] for r in rejected if r["rule"] == "near_duplicate")
    quality = next(r["id"] for r in rejected if r["stage"] == "quality")
    clusters = {r["id"]: r["cluster_id"] for r in pq.read_table(indexed / "duplicates").to_pylist()}
    for doc in (copied, near, quality):
        read.clear()
        text = trace(str(indexed), doc)
        # Its own entries, and those of its duplicate cluster's id.
        keys = {doc, clusters.get(doc, doc)}
        holding = {str(indexed / s) for k, _, s in entries if k in keys}
        parts = {p for p in read if "/index/" in p}
        assert 1 <= len(parts) <= len(keys) and set(read) - parts <= holding, (doc, read)
        assert text == trace(str(plain), doc), doc
