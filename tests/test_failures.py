"""Failures during a run: a Ray worker killed mid-run, and the whole job
killed and run again (local disk and S3). The output must equal that of an
undisturbed run: no document lost or written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml
from pyarrow.fs import FileSelector

from conftest import assert_same_output, output_tables
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]


class WorkerKiller(threading.Thread):
    """SIGKILLs the first Ray worker seen running each target task."""

    def __init__(self, targets: list[str]):
        super().__init__(daemon=True)
        self.targets = list(targets)
        self.killed: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while self.targets and not self.done.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                title = " ".join(proc.info["cmdline"] or [])
                if title.startswith("ray::") and self.targets and self.targets[0] in title:
                    try:
                        proc.kill()
                    except psutil.NoSuchProcess:
                        continue
                    self.killed.append(title)
                    self.targets.pop(0)
            time.sleep(0.005)


def test_a_worker_killed_mid_run_changes_nothing(
    ray_cluster, sample_dir, tmp_path, reference_output
):
    # One worker while it annotates input, one while it writes data/.
    killer = WorkerKiller(["annotate_batch", "_kept_documents"])
    killer.start()
    try:
        run_job(str(sample_dir), str(tmp_path / "out"), config_from_dict({}))
    finally:
        killer.done.set()
        killer.join()
    assert len(killer.killed) == 2, killer.killed
    assert_same_output(reference_output, output_tables(str(tmp_path / "out")))


def start_cli(input_uri: str, output_uri: str, config: Path, env: dict | None = None):
    return subprocess.Popen(
        [sys.executable, "-m", "dedupe_at_scale.cli", "run", "--input", input_uri,
         "--output", output_uri, "--config", str(config), "--num-cpus", "2", "--quiet"],
        env={**os.environ, **(env or {})}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 200) -> None:
    """SIGKILL the job's whole process group (driver and its local Ray) once
    `ready()` holds; fail if the job ended first."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"job ended before the kill point:\n{proc.stdout.read()}"
        assert time.time() < deadline, "kill point never reached"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen) -> str:
    output, _ = proc.communicate(timeout=280)
    assert proc.returncode == 0, output[-3000:]
    return output


@pytest.mark.parametrize("kill_point", ["annotating", "annotated"])
def test_a_killed_run_is_finished_by_the_same_command(
    sample_dir, tmp_path, reference_output, kill_point
):
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    config.write_text("{}\n")
    staging = out / "_staging"
    ready = {
        "annotating": lambda: any((staging / "annotated").glob("*.parquet")),
        "annotated": lambda: (staging / "annotated.done").exists(),
    }[kill_point]
    kill_when(start_cli(str(sample_dir), str(out), config), ready)
    assert not (out / "manifest.json").exists()

    output = finish(start_cli(str(sample_dir), str(out), config))
    assert "Top rejection reasons" in output
    assert_same_output(reference_output, output_tables(str(out)))
    assert not staging.exists()


def test_a_killed_run_on_s3_is_finished_by_the_same_command(
    s3_server, sample_dir, tmp_path, reference_output
):
    s3_server.upload_dir(sample_dir, "corpus-in", "killed")
    # Credentials from the environment this time, not from the config.
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"storage": {"endpoint_url": s3_server.endpoint}}))
    client = s3_server.client()

    def annotated() -> bool:
        listing = client.list_objects_v2(
            Bucket="corpus-out", Prefix="killed/_staging/annotated.done"
        )
        return listing["KeyCount"] > 0

    args = ("s3://corpus-in/killed", "s3://corpus-out/killed", config, s3_server.env())
    kill_when(start_cli(*args), annotated)
    finish(start_cli(*args))

    fs = s3_server.arrow_fs()
    assert_same_output(reference_output, output_tables("corpus-out/killed", fs))
    names = {i.base_name for i in fs.get_file_info(FileSelector("corpus-out/killed"))}
    assert names == {"data", "rejected", "duplicates", "manifest.json"}
