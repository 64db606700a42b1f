"""A real multi-node Ray cluster on 127.0.0.1 (head + one worker node, each a
separate `ray start`, via cluster/local/start.sh) whose nodes run a Python
that has every dependency but not this package, as a node whose image lacks
it: jobs submitted through the Jobs API ship the package themselves. The nodes get S3 credentials from their environment, and
no secret may show in what the Jobs API, the dashboard or the logs show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dedupe_at_scale.cli.ray_cluster import ClusterError, check_reachable

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.timeout(400)]
NO_AUTH = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "cluster" / "local" / name), *args],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
    )  # fmt: skip


def cluster_processes(temp_dir: str) -> list[str]:
    """Processes naming the cluster's temp directory on their command line
    or holding a file under it open (the agents and the client server only do
    the latter)."""
    found = subprocess.run(["pgrep", "-f", temp_dir + "/"], capture_output=True, text=True)
    pids = set(found.stdout.split())
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            targets = [os.readlink(fd) for fd in fds.iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        if any(t.startswith(temp_dir + "/") for t in targets):
            pids.add(fds.parent.name)
    return sorted(pids - {str(os.getpid())})


@pytest.fixture(scope="module")
def node_python(tmp_path_factory) -> Path:
    """A virtualenv whose site-packages points at this one's as a plain path
    entry: the .pth files there, this checkout's editable install among them,
    are not processed, so every dependency imports but dedupe_at_scale does not."""
    root = tmp_path_factory.mktemp("node-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "job-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    ray = root / "bin" / "ray"
    ray.write_text(
        f"#!{python}\nimport sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n"
    )
    ray.chmod(0o755)
    probe = subprocess.run([str(python), "-c", "import ray, pyarrow, fasttext, s3fs, dedupe_at_scale"],
                           capture_output=True, text=True, cwd=root)  # fmt: skip
    assert "No module named 'dedupe_at_scale'" in probe.stderr, probe.stderr
    return root / "bin"


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory, node_python, s3_server):
    state = tmp_path_factory.mktemp("cluster")
    # Credentials in the nodes' environment: how a cluster of instances with a
    # role, or pods with a Secret, gives them to every job.
    env = {
        "RAY": str(node_python / "ray"),
        "PYTHON": str(node_python / "python"),
        **s3_server.env(),
    }
    started = script("start.sh", "--workers", "1", "--cpus", "1", "--memory", "3",
                     "--object-store", "0.5", "--state", str(state), env=env)  # fmt: skip
    temp_dir = (state / "temp_dir").read_text().strip() if (state / "temp_dir").exists() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Jobs API:" in started.stdout
        yield state
    finally:
        stopped = script("stop.sh", "--state", str(state))
        assert stopped.returncode == 0, stopped.stderr
        if temp_dir:
            assert cluster_processes(temp_dir) == []
            shutil.rmtree(temp_dir, ignore_errors=True)


def submit(dashboard: str, config: Path | None, input_uri: str, output_uri: str, *more: str,
           env: dict | None = None):  # fmt: skip
    spec = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "submit", "--address", dashboard,
         *spec, "--input", input_uri, "--output", output_uri, *more],
        capture_output=True, text=True, timeout=300, env={**NO_AUTH, **(env or {})},
    )  # fmt: skip


def test_demo_job_submitted_to_a_two_node_cluster(local_cluster, sample_dir, tmp_path):
    address = (local_cluster / "address").read_text().strip()
    dashboard = (local_cluster / "dashboard").read_text().strip()
    status = subprocess.run([str(BIN / "ray"), "status", "--address", address],
                            capture_output=True, text=True, env=NO_AUTH, timeout=60)  # fmt: skip
    assert status.stdout.count("node_") == 2, status.stdout
    # run --address's probe: the GCS answers as gRPC; the dashboard does not.
    check_reachable(address, 10)
    with pytest.raises(ClusterError, match="accepts connections but is not a Ray cluster's GCS"):
        check_reachable(dashboard.split("://")[-1], 10)

    out = tmp_path / "out"
    config = ROOT / "jobs" / "demo.yaml"
    submitted = submit(dashboard, config, str(sample_dir), str(out), "--wait")
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "SUCCEEDED" in submitted.stdout
    assert "Top rejection reasons" in submitted.stdout  # the job's own logs, streamed

    manifest = json.loads((out / "manifest.json").read_text())
    data, rejected = pq.read_table(out / "data"), pq.read_table(out / "rejected")
    assert manifest["counts"]["input"] == 2000 == data.num_rows + rejected.num_rows
    assert manifest["counts"]["kept"] == data.num_rows > 0
    assert not (out / "_staging").exists()


def test_a_failing_job_fails_the_submit_command(local_cluster, tmp_path):
    """Submitted without --config, like `run`: the job runs with the defaults
    and gets as far as its input."""
    dashboard = (local_cluster / "dashboard").read_text().strip()
    submitted = submit(dashboard, None, str(tmp_path / "missing"), str(tmp_path / "out"), "--wait")
    assert submitted.returncode == 1
    assert "input not found" in submitted.stdout and "FAILED" in submitted.stdout


def test_unreachable_jobs_api_is_a_clear_error(tmp_path):
    submitted = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "submit", "--address", "http://127.0.0.1:9",
         "--config", str(ROOT / "jobs" / "demo.yaml"), "--input", str(tmp_path),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert submitted.returncode == 1
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in submitted.stderr


def test_ray_client_is_refused_with_the_way_in(sample_dir, tmp_path):
    # Ray Data fails over Ray Client ('Worker' object has no attribute
    # 'core_worker', ray-project/ray#42739): refused before anything starts.
    ran = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "run", "--address", "ray://127.0.0.1:1",
         "--input", str(sample_dir), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "Ray Data does not run over Ray Client" in ran.stderr
    assert "dedupe-at-scale submit --address http://HEAD:8265" in ran.stderr
    assert not (tmp_path / "out").exists()


def dashboard_text(dashboard: str, path: str) -> str:
    with urllib.request.urlopen(dashboard + path, timeout=30) as response:
        return response.read().decode()


def test_no_secret_reaches_the_job_info_dashboard_or_logs(
    local_cluster, s3_server, sample_dir, tmp_path
):
    dashboard = (local_cluster / "dashboard").read_text().strip()
    s3_server.upload_dir(sample_dir, "corpus-in", "cluster")
    # Not secrets: they show where a spec's comments and --env values go.
    in_comment, in_env = f"comment-canary-{uuid.uuid4()}", f"env-canary-{uuid.uuid4()}"
    config = tmp_path / "s3.yaml"
    config.write_text(
        f"# {in_comment}\n" + yaml.safe_dump({"storage": {"endpoint_url": s3_server.endpoint}})
    )
    submitted = submit(dashboard, config, "s3://corpus-in/cluster", "s3://corpus-out/cluster",
                       "--env", "AWS_DEFAULT_REGION", "--env", "DDS_TEST_CANARY", "--wait",
                       env={"AWS_DEFAULT_REGION": "us-east-1", "DDS_TEST_CANARY": in_env})  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "SUCCEEDED" in submitted.stdout
    keys = s3_server.client().list_objects_v2(Bucket="corpus-out", Prefix="cluster/manifest.json")
    assert keys["KeyCount"] == 1

    job_id = submitted.stdout.split()[1]
    shown = dashboard_text(dashboard, "/api/jobs/") + dashboard_text(
        dashboard, f"/api/jobs/{job_id}"
    )
    shown += (
        dashboard_text(dashboard, f"/api/jobs/{job_id}/logs") + submitted.stdout + submitted.stderr
    )
    assert in_env in shown  # --env values are there, so a secret in one would be too
    assert s3_server.endpoint in shown  # so is the spec, parsed ...
    assert in_comment not in shown  # ... without the file's comments
    temp_dir = Path((local_cluster / "temp_dir").read_text().strip())
    logs = [p for p in (temp_dir / "session_latest" / "logs").rglob("*") if p.is_file()]
    assert logs
    for secret in (s3_server.secret,):
        assert secret not in shown
        assert not [p.name for p in logs if secret.encode() in p.read_bytes()]


@pytest.mark.parametrize(
    "spec, args, named",
    [({"storage": {"options": {"key": "AKIAEXAMPLE", "secret": "wJalrEXAMPLE"}}}, [],
      "storage.options.key, storage.options.secret"),
     ({"storage": {"options": {"client_kwargs": {"aws_session_token": "tok"}}}}, [],
      "storage.options.client_kwargs.aws_session_token"),
     ({}, ["--env", "AWS_SECRET_ACCESS_KEY"], "--env AWS_SECRET_ACCESS_KEY"),
     ({"storage": {"endpoint_url": "http://minio:hunter2@127.0.0.1:9000"}}, [],
      "the password in http://minio:***@127.0.0.1:9000"),
     ({}, ["--pip", "git+https://bot:ghp_example@github.com/x/y"],
      "the password in git+https://bot:***@github.com/x/y"),
     ({"storage": {"options": {"client_kwargs": {"endpoint_url": "http://u:hunter2@127.0.0.1:9000"}}}}, [],
      "the password in http://u:***@127.0.0.1:9000 in storage.options.client_kwargs.endpoint_url"),
     ({"tokens": {"tokenizer": "https://bot:hunter2@example.org/tok.json"}}, [],
      "the password in https://bot:***@example.org/tok.json in tokens.tokenizer"),
     ({"decontaminate": {"sources": [{"uri": "https://u:hunter2@example.org/q.parquet"}]}}, [],
      "in decontaminate.sources[0].uri"),
     ({}, ["--env", "DB_URL"], "the password in http://u:***@db.example:5432 in --env DB_URL"),
     ({}, ["--env", "DDS_NOTE"], "a credential (ghp_...) in --env DDS_NOTE")],
)  # fmt: skip
def test_submit_refuses_to_put_a_secret_in_the_runtime_env(tmp_path, spec, args, named):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(spec))
    env = {"DB_URL": "http://u:hunter2@db.example:5432", "DDS_NOTE": "ghp_" + "a1B2" * 9}
    # Refused before any connection: this address has no server.
    submitted = submit("http://127.0.0.1:9", config, str(tmp_path), str(tmp_path / "out"), *args,
                       env=env)  # fmt: skip
    assert submitted.returncode == 2
    assert named in submitted.stderr and "readable by anyone" in submitted.stderr
    assert "cannot reach" not in submitted.stderr
    assert "hunter2" not in submitted.stderr and "ghp_example" not in submitted.stderr
    assert "a1B2" not in submitted.stderr


def test_the_spec_ships_parsed_without_its_comments(tmp_path):
    from dedupe_at_scale.cli.submit import build_runtime_env, shipped_spec
    from dedupe_at_scale.config import load_config

    config = tmp_path / "job.yaml"
    config.write_text("# token: ghp_" + "x" * 36 + "\ndedup:\n  threshold: 0.7  # tuned\n")
    spec = shipped_spec(load_config(config))
    env = build_runtime_env(spec, [], [])["env_vars"]
    assert "ghp_" not in str(env) and "tuned" not in str(env)
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text(env["DDS_JOB_SPEC"])
    assert load_config(shipped) == load_config(config)


START_TIMES_OUT_ONCE = """
import subprocess, sys
import psutil, ray
from dedupe_at_scale.cli import ray_cluster

calls = []
def init(**kwargs):
    calls.append(kwargs["address"])
    if len(calls) == 1:  # what a raylet that missed Ray's 30 s leaves behind
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        raise Exception("The current node timed out during startup. This could happen ...")
ray.init = init
ray.data.DataContext.get_current()  # the rest of connect() runs as after a start
ray_cluster.connect(None, 1)
print(calls, len(psutil.Process().children(recursive=True)))
"""


def test_a_local_ray_that_starts_too_slowly_is_started_again():
    """Ray gives a new node 30 s to register; on a loaded machine the CLI
    starts it again, after stopping what the failed start left running."""
    result = subprocess.run([sys.executable, "-c", START_TIMES_OUT_ONCE], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['local',", "'local']", "0"]
    assert "did not start in time (try 1 of 3); starting it again" in result.stderr
