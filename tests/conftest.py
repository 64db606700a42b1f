"""Shared fixtures. Tests marked `ray` need a real Ray: the session's local
Ray (2 CPUs, as on CI), a cluster of `ray start` nodes, or a job process that
starts its own. `make test-fast` runs the others."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

GOOD_EN = (
    "The river that runs through the old town has always shaped the life of its people.\n"
    "Farmers brought their grain to the mills on its banks, and merchants carried wool to the coast.\n"
    "In the spring the water rises quickly, so the town built stone walls to protect the market.\n\n"
    "Today the mills have become a museum that explains how the valley grew over four centuries.\n"
    "Visitors can walk along the path by the water and read the history of each bridge.\n"
    "Children learn how the floods of the past changed the shape of the streets they know."
)


# Fixtures that start Ray: a test using one, directly or through another
# fixture, is marked `ray` here; tests that start Ray in a child process say so
# themselves with @pytest.mark.ray.
RAY_FIXTURES = {"ray_cluster", "local_cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if not ray.is_initialized():
        # "local": a new Ray even if a `ray start` cluster runs on this machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from dedupe_at_scale.sample import generate_sample

    path = tmp_path_factory.mktemp("sample")
    generate_sample(path, docs=2000, shards=8, seed=7)
    return path


def write_table(path: Path, columns: dict, schema: pa.Schema | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path, **kwargs)
    return path


class S3Server:
    """moto's S3 in server mode on 127.0.0.1, in its own process, with IAM
    authentication on: only the access key made at start-up is accepted."""

    BUCKETS = ("corpus-in", "corpus-out")

    def __init__(self) -> None:
        import json
        import os
        import socket
        import subprocess
        import sys
        import time

        import boto3

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # The first three calls (create user, policy, key) are unauthenticated.
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        iam = boto3.client("iam", **self._client_args("bootstrap", "bootstrap"))
        iam.create_user(UserName="dds")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
        iam.put_user_policy(UserName="dds", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dds")["AccessKey"]
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        s3 = self.client()
        for bucket in self.BUCKETS:
            s3.create_bucket(Bucket=bucket)

    def _client_args(self, key: str, secret: str) -> dict:
        return {
            "endpoint_url": self.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
        }

    def client(self):
        import boto3

        return boto3.client("s3", **self._client_args(self.key, self.secret))

    def arrow_fs(self):
        """pyarrow's own S3 filesystem on this server: reads the job's output
        without anything of dedupe_at_scale."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key=self.key, secret_key=self.secret, region="us-east-1",
            endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
        )  # fmt: skip

    def storage(self, key: str | None = None, secret: str | None = None) -> dict:
        """The job config's storage section for this server."""
        return {
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "options": {"key": key or self.key, "secret": secret or self.secret},
        }

    def env(self) -> dict:
        """AWS environment variables for this server (for a CLI process)."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def upload_dir(self, local: Path, bucket: str, prefix: str) -> None:
        s3 = self.client()
        for path in sorted(local.rglob("*.parquet")):
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local)}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def reference_output(ray_cluster, sample_dir, tmp_path_factory) -> dict[str, pa.Table]:
    """The shards of an undisturbed local run of the sample with the default
    config: what runs on S3, killed or re-run, must reproduce."""
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.pipeline import run_job

    out = tmp_path_factory.mktemp("reference") / "out"
    run_job(str(sample_dir), str(out), config_from_dict({}))
    return output_tables(str(out))


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    yield server
    server.stop()


def output_tables(root: str, filesystem=None) -> dict[str, pa.Table]:
    """Every shard of data/, rejected/ and duplicates/ by relative path, read
    with plain pyarrow (local path, or bucket/prefix with an S3 filesystem)."""
    import pyarrow.fs as pafs

    fs = filesystem or pafs.LocalFileSystem()
    shards = {}
    for name in ("data", "rejected", "duplicates"):
        selector = pafs.FileSelector(f"{root}/{name}", allow_not_found=True, recursive=True)
        for info in fs.get_file_info(selector):
            if info.path.endswith(".parquet"):
                shards[info.path[len(root) + 1 :]] = pq.read_table(info.path, filesystem=fs)
    return shards


def assert_same_output(expected: dict[str, pa.Table], actual: dict[str, pa.Table]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, table in expected.items():
        assert actual[name].equals(table), name
