"""The job against real S3-compatible servers on 127.0.0.1 (moto in server
mode with IAM authentication on, and SeaweedFS): input from one bucket,
output to another, read back with plain pyarrow; unreachable endpoints and
wrong credentials."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import pyarrow.fs as pafs
import pytest

from conftest import assert_same_output, output_tables
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io import fanout, staged
from dedupe_at_scale.io.storage import StorageError
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.plan import plan_job

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def s3_input(s3_server, sample_dir):
    s3_server.upload_dir(sample_dir, "corpus-in", "sample")
    return "s3://corpus-in/sample"


def test_bucket_to_bucket_equals_the_local_run(
    object_store, sample_dir, reference_output, monkeypatch
):
    s3_server = object_store
    s3_server.upload_dir(sample_dir, "corpus-in", "e2e")
    cfg = config_from_dict({"storage": s3_server.storage()})
    # The write pass as on many small files of an object store (a fraction
    # of a CPU per task, io/fanout.file_task_cpus), on the sample's few.
    monkeypatch.setattr(fanout, "MANY_FILES", 1)
    asked = []

    def task_cpus(location, sizes):
        asked.append(fanout.file_task_cpus(location, sizes))
        return asked[-1]

    monkeypatch.setattr(staged, "file_task_cpus", task_cpus)
    result = run_job("s3://corpus-in/e2e", "s3://corpus-out/run", cfg)
    assert asked and set(asked) == {fanout.TASK_CPUS}

    fs = s3_server.arrow_fs()
    assert_same_output(reference_output, output_tables("corpus-out/run", fs))
    with fs.open_input_stream("corpus-out/run/manifest.json") as handle:
        manifest = json.loads(handle.read())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    assert manifest["counts"]["input"] == 2000
    assert manifest["input"]["files"][0]["path"].startswith("s3://corpus-in/e2e/")
    # Credentials given in the config never reach the manifest.
    assert manifest["config"]["storage"]["options"] == {"key": "***", "secret": "***"}
    assert s3_server.secret not in json.dumps(manifest)
    listing = fs.get_file_info(pafs.FileSelector("corpus-out/run"))
    assert sorted(i.base_name for i in listing) == [
        "data",
        "duplicates",
        "index",
        "manifest.json",
        "rejected",
        "report.html",
        "report.json",
    ]


@pytest.mark.timeout(120)
def test_unreachable_endpoint_is_a_clear_error(sample_dir):
    # A closed port: refused at once. Planning needs no Ray.
    cfg = config_from_dict(
        {"storage": {"endpoint_url": "http://127.0.0.1:9", "options": {"key": "k", "secret": "s"}}}
    )
    started = time.time()
    refused = r"the endpoint http://127.0.0.1:9 refused the connection.*storage.endpoint_url"
    with pytest.raises(StorageError, match=r"^s3://corpus-out/x: " + refused):
        plan_job(str(sample_dir), "s3://corpus-out/x", cfg)
    with pytest.raises(StorageError, match=r"^s3://corpus-in/sample: " + refused):
        plan_job("s3://corpus-in/sample", str(sample_dir.parent / "unused"), cfg)
    # At once: botocore and s3fs alone retried a refusal for about 12 s per URI.
    assert time.time() - started < 5


@contextmanager
def silent_endpoint():
    """A server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # closed
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        server.close()
        for conn in accepted:
            conn.close()


@pytest.mark.timeout(200)
@pytest.mark.parametrize("side", ["input", "output"])
def test_an_endpoint_that_never_answers_fails_within_a_bound(sample_dir, tmp_path, side):
    with silent_endpoint() as (endpoint, accepted):
        storage = {"endpoint_url": endpoint, "options": {"key": "k", "secret": "s"}}
        cfg = config_from_dict({"storage": {**storage, "first_answer_seconds": 3}})
        uri = {"input": "s3://corpus-in/silent", "output": "s3://corpus-out/silent"}[side]
        args = (uri, str(tmp_path / "out")) if side == "input" else (str(sample_dir), uri)
        started = time.time()
        with pytest.raises(StorageError, match="sent no answer within 3 s") as error:
            plan_job(*args, cfg)
        elapsed = time.time() - started
        assert accepted  # the connection was made: this is the silent case, not a refusal
    assert str(error.value).startswith(uri)
    assert 2.5 < elapsed < 15


def test_wrong_credentials_are_a_clear_error(s3_server, s3_input, tmp_path):
    cfg = config_from_dict(
        {"storage": s3_server.storage(key="AKIAWRONGWRONGWRONG1", secret="nope")}
    )
    with pytest.raises(StorageError, match=r"s3://corpus-in/sample.*credentials"):
        run_job(s3_input, str(tmp_path / "out"), cfg)
    with pytest.raises(StorageError, match=r"s3://corpus-out/denied.*credentials"):
        run_job(str(tmp_path), "s3://corpus-out/denied", cfg)
