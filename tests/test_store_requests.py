"""What per-file storage work costs on an object store: the requests one
shard's publishing and one file's read make on a real S3 server (moto, on
loopback), counted as botocore sends them; and whether a staged file's decision files are fetched
while the file itself is (one wait on the store for the chain of steps, not
one per step)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from dedupe_at_scale import columns as col
from dedupe_at_scale.io import fanout
from dedupe_at_scale.io.inputs import FileSlice, InputFile
from dedupe_at_scale.io.output import _move_into_place, file_counts
from dedupe_at_scale.io.rows import _read_row_groups
from dedupe_at_scale.io.staged import Decision, DecisionFiles, read_staged
from dedupe_at_scale.io.storage import (
    Location,
    StorageConfig,
    put_parquet,
    read_parquet,
    resolve,
)


@pytest.fixture
def bucket(s3_server, request):
    """A fresh prefix of corpus-out as a Location, and the list every
    request its filesystem sends is appended to."""
    storage = StorageConfig(**s3_server.storage())
    location = resolve(f"s3://corpus-out/{request.node.name}", storage)
    location.fs.ls("corpus-out")  # makes the client, so that it can be watched
    sent: list[tuple[str, str]] = []

    def record(request, **_):
        sent.append((request.method, request.url.split("?")[0].rsplit("/", 1)[-1]))

    location.fs.s3.meta.events.register("before-send.s3", record)
    yield location, sent
    location.fs.s3.meta.events.unregister("before-send.s3", record)


def _put_parquet(location: Location, path: str, rows: int = 50) -> int:
    table = pa.table({col.UID: pa.array(range(rows), pa.int64())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    location.fs.pipe(path, data)
    return len(data)


def test_publishing_a_shard_on_an_object_store_is_one_copy(bucket):
    """fs.mv on S3 is a HEAD, a bucket check, two listings, a HEAD, a copy
    and a delete: 7 requests a shard. A server-side copy is 2; the staged
    copies go when _staging/ is removed, 1,000 keys a request."""
    location, sent = bucket
    staged_root = location.join("_staging", "publish")
    for k in range(3):
        _put_parquet(location, f"{staged_root}/rejected/part-{k}.parquet")
    location.refresh()
    sent.clear()
    for k in range(3):
        _move_into_place(location, f"rejected/part-{k}.parquet", staged_root)
    assert sorted(sent) == sorted(
        [("HEAD", f"part-{k}.parquet") for k in range(3)]
        + [("PUT", f"part-{k}.parquet") for k in range(3)]
    )
    for k in range(3):  # the copies are whole, the sources still there
        published = location.join("rejected", f"part-{k}.parquet")
        assert read_parquet(location, published).num_rows == 50
        assert location.fs.exists(f"{staged_root}/rejected/part-{k}.parquet")
    # A shard no longer staged (an earlier attempt published it and _staging/
    # went) is left to publish()'s check of the targets.
    sent.clear()
    _move_into_place(location, "rejected/part-9.parquet", staged_root)
    assert "PUT" not in [method for method, _ in sent]
    assert not location.fs.exists(location.join("rejected", "part-9.parquet"))


def test_a_file_of_known_size_is_read_without_a_head(bucket):
    """fsspec's S3 file asks for the size and ETag (a HEAD) before its first
    read; the plan and the listings already know the size."""
    location, sent = bucket
    path = location.join("one.parquet")
    size = _put_parquet(location, path, rows=500)
    location.refresh()
    sent.clear()
    assert read_parquet(location, path).num_rows == 500
    assert [method for method, _ in sent] == ["HEAD", "GET"]
    sent.clear()
    assert read_parquet(location, path, size=size).num_rows == 500
    assert [method for method, _ in sent] == ["GET"]
    # An input slice: its file's size comes from the plan.
    f = InputFile(path, path, "one.parquet", 500, size, (500,), False)
    sent.clear()
    assert _read_row_groups(location, FileSlice(f, (0,), 0, 500)).num_rows == 500
    assert [method for method, _ in sent] == ["GET"]


def test_footers_of_written_files_are_read_with_the_listings_sizes(bucket, monkeypatch):
    """Rows and bytes of the files a step wrote (file_counts) and of the
    finished shards (describe_shards): one listing for the sizes, then one
    GET per footer, no HEAD."""
    monkeypatch.setattr(fanout.ray, "is_initialized", lambda: False)  # here, not in tasks
    location, sent = bucket
    folder = location.join("decisions")
    paths = [f"{folder}/part-{k}.parquet" for k in range(3)]
    sizes = [_put_parquet(location, path, rows=10 * (k + 1)) for k, path in enumerate(paths)]
    sent.clear()
    counts = file_counts(location, paths)
    assert counts == {p: (10 * (k + 1), sizes[k]) for k, p in enumerate(paths)}
    on_files = sorted(method for method, name in sent if name.startswith("part-"))
    assert on_files == ["GET"] * 3


def test_a_counted_write_is_one_put_and_counts_what_it_wrote(bucket):
    """put_parquet (dedup's decision files): one PUT, and the rows and bytes
    it returns are the footer's and the listing's, so that no reader asks."""
    location, sent = bucket
    path = location.join("decisions", "dedup-00000.parquet")
    table = pa.table({col.UID: pa.array(range(37), pa.int64())})
    sent.clear()
    counted = put_parquet(location, path, table)
    assert [method for method, name in sent if name.startswith("dedup-")] == ["PUT"]
    location.refresh()
    assert counted == file_counts(location, [path])[path] == (37, location.fs.size(path))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    assert location.fs.cat_file(path) == sink.getvalue().to_pybytes()  # pq.write_table's bytes


def test_decision_files_are_read_with_the_listings_sizes(bucket):
    """A step's decision files (steps.base.decision_files) take their sizes
    from one listing of the decisions' folder, so that reading one, as every
    read of its staged file does, is one GET and no HEAD."""
    from types import SimpleNamespace

    from dedupe_at_scale.steps.base import decision_files

    location, sent = bucket
    folder = location.join("_staging", "decisions")
    paths = [f"{folder}/dedup-{k:05d}.parquet" for k in range(3)]
    sizes = [_put_parquet(location, path, rows=5 + k) for k, path in enumerate(paths)]
    view = SimpleNamespace(location=location, decisions_dir=folder)
    files = decision_files(paths, view, only={0, 2})  # file 1: the step decided nothing
    assert files.sizes == (sizes[0], 0, sizes[2])
    sent.clear()
    assert [files.read(k) is None for k in range(3)] == [False, True, False]
    assert files.read(2).num_rows == 7
    assert sorted(method for method, _ in sent) == ["GET"] * 3


class NoSizeMemory(MemoryFileSystem):
    """A filesystem whose files take no size when opened."""

    def _open(self, path, mode="rb", *args, **kwargs):
        if "size" in kwargs:
            raise TypeError("_open() got an unexpected keyword argument 'size'")
        return super()._open(path, mode, *args, **kwargs)


def test_a_filesystem_without_sizes_is_read_as_before(tmp_path):
    fs = NoSizeMemory(skip_instance_cache=True)
    location = Location("memory://nosize", fs, "/nosize")
    size = _put_parquet(location, "/nosize/one.parquet", rows=7)
    assert read_parquet(location, "/nosize/one.parquet", size=size).num_rows == 7


class SlowOpens(LocalFileSystem):
    """A local filesystem whose every open waits, as a store's first byte
    does; it records when each open started and ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def _open(self, path, *args, **kwargs):
        started = time.perf_counter()
        time.sleep(0.2)
        with self.lock:
            self.spans.append((started, time.perf_counter()))
        return super()._open(path, *args, **kwargs)


def _reject(rule: str):
    """A file-backed decision: rejects the kept rows whose uid its file lists."""

    def apply(index, table, decided):
        listed = set(decided.column(col.UID).to_pylist())
        rows = [uid in listed and stage is None for uid, stage in
                zip(table.column(col.UID).to_pylist(), table.column(col.STAGE).to_pylist())]  # fmt: skip
        rules = pa.array([rule] * table.num_rows)
        return col.mark_rejected(table, np.array(rows), "dedup", rules, rules)

    return apply


def test_a_staged_file_and_its_decision_files_are_fetched_at_once(tmp_path):
    fs = SlowOpens(skip_instance_cache=True)
    location = Location(str(tmp_path), fs, str(tmp_path))
    staged = pa.table({col.UID: pa.array(range(6), pa.int64()),
                       col.STAGE: pa.nulls(6, pa.string()), col.RULE: pa.nulls(6, pa.string()),
                       col.VALUE: pa.nulls(6, pa.float64()),
                       col.REASON: pa.nulls(6, pa.string())})  # fmt: skip
    pq.write_table(staged, tmp_path / "staged.parquet")
    decisions = []
    for step, uids in (("first", [1, 2]), ("second", [2, 4])):
        pq.write_table(
            pa.table({col.UID: pa.array(uids, pa.int64())}), tmp_path / f"{step}.parquet"
        )
        files = DecisionFiles(location, (str(tmp_path / f"{step}.parquet"),))
        decisions.append(Decision(_reject(step), files=files))
    # A decision without files between them, applied in its place.
    decisions.insert(
        1, Decision(lambda index, table: table.append_column("seen", pa.array([index] * 6)))
    )
    table = read_staged(location, str(tmp_path / "staged.parquet"), None, decisions, 0)
    # Step order: uid 2 keeps the first step's rejection.
    assert table.column(col.RULE).to_pylist() == [None, "first", "first", None, "second", None]
    assert table.column("seen").to_pylist() == [0] * 6
    assert len(fs.spans) == 3
    # Every open began before the first one ended: they were in flight together.
    assert max(start for start, _ in fs.spans) < min(end for _, end in fs.spans)
