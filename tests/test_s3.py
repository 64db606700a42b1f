"""The job against a real S3-compatible server on 127.0.0.1 (moto, server
mode, IAM authentication on): input from one bucket, output to another, read
back with plain pyarrow; unreachable endpoints and wrong credentials."""

from __future__ import annotations

import json
import time

import pyarrow.fs as pafs
import pytest

from conftest import assert_same_output, output_tables
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.storage import StorageError
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def s3_input(s3_server, sample_dir):
    s3_server.upload_dir(sample_dir, "corpus-in", "sample")
    return "s3://corpus-in/sample"


def test_bucket_to_bucket_equals_the_local_run(s3_server, s3_input, reference_output):
    cfg = config_from_dict({"storage": s3_server.storage()})
    result = run_job(s3_input, "s3://corpus-out/run", cfg)

    fs = s3_server.arrow_fs()
    assert_same_output(reference_output, output_tables("corpus-out/run", fs))
    with fs.open_input_stream("corpus-out/run/manifest.json") as handle:
        manifest = json.loads(handle.read())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    assert manifest["counts"]["input"] == 2000
    assert manifest["input"]["files"][0]["path"].startswith("s3://corpus-in/sample/")
    # Credentials given in the config never reach the manifest.
    assert manifest["config"]["storage"]["options"] == {"key": "***", "secret": "***"}
    assert s3_server.secret not in json.dumps(manifest)
    listing = fs.get_file_info(pafs.FileSelector("corpus-out/run"))
    assert sorted(i.base_name for i in listing) == [
        "data",
        "duplicates",
        "manifest.json",
        "rejected",
    ]


def test_unreachable_endpoint_is_a_clear_error(ray_cluster, sample_dir):
    cfg = config_from_dict(
        {"storage": {"endpoint_url": "http://127.0.0.1:9", "options": {"key": "k", "secret": "s"}}}
    )
    started = time.time()
    with pytest.raises(StorageError, match=r"s3://corpus-out/x.*endpoint"):
        run_job(str(sample_dir), "s3://corpus-out/x", cfg)
    with pytest.raises(StorageError, match=r"cannot list input s3://corpus-in/sample.*endpoint"):
        run_job("s3://corpus-in/sample", str(sample_dir.parent / "unused"), cfg)
    assert time.time() - started < 90


def test_wrong_credentials_are_a_clear_error(s3_server, s3_input, tmp_path):
    cfg = config_from_dict(
        {"storage": s3_server.storage(key="AKIAWRONGWRONGWRONG1", secret="nope")}
    )
    with pytest.raises(StorageError, match=r"s3://corpus-in/sample.*credentials"):
        run_job(s3_input, str(tmp_path / "out"), cfg)
    with pytest.raises(StorageError, match=r"s3://corpus-out/denied.*credentials"):
        run_job(str(tmp_path), "s3://corpus-out/denied", cfg)
