"""A real multi-node Ray cluster on 127.0.0.1 (head + one worker node, each a
separate `ray start`, via cluster/local/start.sh), the demo job submitted
through the Ray Jobs API, its output checked; the cluster is always stopped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY": str(BIN / "ray"), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "cluster" / "local" / name), *args],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip


def cluster_processes(temp_dir: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", temp_dir + "/"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.fixture
def local_cluster(tmp_path):
    state = tmp_path / "cluster"
    started = script("start.sh", "--workers", "1", "--cpus", "1", "--memory", "3",
                     "--object-store", "0.5", "--state", str(state))  # fmt: skip
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


def test_demo_job_submitted_to_a_two_node_cluster(local_cluster, sample_dir, tmp_path):
    address = (local_cluster / "address").read_text().strip()
    dashboard = (local_cluster / "dashboard").read_text().strip()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    status = subprocess.run([str(BIN / "ray"), "status", "--address", address],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert status.stdout.count("node_") == 2, status.stdout
    assert "0.0/2.0 CPU" in status.stdout

    out = tmp_path / "out"
    submitted = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "submit", "--address", dashboard,
         "--config", str(ROOT / "jobs" / "demo.yaml"), "--input", str(sample_dir),
         "--output", str(out), "--wait"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "SUCCEEDED" in submitted.stdout
    assert "Top rejection reasons" in submitted.stdout  # the job's own logs, streamed

    manifest = json.loads((out / "manifest.json").read_text())
    data, rejected = pq.read_table(out / "data"), pq.read_table(out / "rejected")
    assert manifest["counts"]["input"] == 2000 == data.num_rows + rejected.num_rows
    assert manifest["counts"]["kept"] == data.num_rows > 0
    assert not (out / "_staging").exists()


def test_a_failing_job_fails_the_submit_command(local_cluster, tmp_path):
    dashboard = (local_cluster / "dashboard").read_text().strip()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    submitted = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "submit", "--address", dashboard,
         "--config", str(ROOT / "jobs" / "demo.yaml"), "--input", str(tmp_path / "missing"),
         "--output", str(tmp_path / "out"), "--wait"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
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
