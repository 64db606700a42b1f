"""What per-file storage work costs on an object store: the requests one
shard's publishing makes on a real S3 server (moto, on loopback), counted as
botocore sends them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale import columns as col
from dedupe_at_scale.io.output import _move_into_place
from dedupe_at_scale.io.storage import Location, StorageConfig, read_parquet, resolve


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
