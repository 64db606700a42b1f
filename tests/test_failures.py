"""Failures during a run: a Ray worker killed mid-run, and the whole job
killed and run again (local disk and S3). The output must equal that of an
undisturbed run: no document lost or written twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from pyarrow.fs import FileSelector

from conftest import assert_same_output, output_tables
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]


class WorkerKiller(threading.Thread):
    """SIGKILLs the first Ray worker seen running each target task, among
    this process's own Ray's workers (another pytest worker's Ray may run
    the same task names at the same time)."""

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
                        if os.getpid() not in {p.pid for p in proc.parents()}:
                            continue
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


def test_a_worker_killed_during_dedup_is_retried(sample_dir, tmp_path, reference_output):
    """The global steps' own Ray tasks: a worker dies inside dedup's verify
    task (SIGKILL, from a worker setup hook) and Ray runs the task again."""
    out, marker = tmp_path / "out", tmp_path / "killed"
    tests = Path(__file__).parent
    env = {**os.environ, "DDS_TEST_KILL_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(tests / "toys" / "run_job.py"), "kill_in_dedup", str(sample_dir), str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()  # a worker did die in _verify
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dedup"]["near_duplicates_removed"] > 0
    assert_same_output(reference_output, output_tables(str(out)))


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


# Killed while annotating, the re-run keeps the read units staged whole and
# annotates the others; killed once every annotated document is staged, it
# resumes after annotation (manifest: resumed_after, annotate.units_reused).
RESUMED_AFTER = {"annotating": None, "annotated": "annotate"}


def assert_resumed(manifest: dict, kill_point: str) -> None:
    assert manifest["resumed_after"] == RESUMED_AFTER[kill_point]
    units, reused = manifest["annotate"]["units"], manifest["annotate"]["units_reused"]
    if kill_point == "annotating":  # killed once a unit was staged: fewer annotated again
        assert 1 <= reused <= units
    else:
        assert reused == units


@pytest.mark.parametrize("kill_point", sorted(RESUMED_AFTER))
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
    manifest = json.loads((out / "manifest.json").read_text())
    assert_resumed(manifest, kill_point)
    # The summary says what was reused, not only the manifest.
    annotate = manifest["annotate"]
    assert f"Resumed: {annotate['units_reused']} of {annotate['units']} read units" in output
    assert not staging.exists()


@pytest.mark.parametrize("kill_point", sorted(RESUMED_AFTER))
def test_a_killed_run_on_s3_is_finished_by_the_same_command(
    object_store, sample_dir, tmp_path, reference_output, kill_point
):
    s3_server = object_store
    prefix = f"killed-{kill_point}"
    s3_server.upload_dir(sample_dir, "corpus-in", prefix)
    # Credentials from the environment this time, not from the config.
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"storage": {"endpoint_url": s3_server.endpoint}}))
    client = s3_server.client()
    staged = {
        "annotating": f"{prefix}/_staging/annotated/",
        "annotated": f"{prefix}/_staging/annotated.done",
    }[kill_point]

    def ready() -> bool:
        return client.list_objects_v2(Bucket="corpus-out", Prefix=staged)["KeyCount"] > 0

    args = (f"s3://corpus-in/{prefix}", f"s3://corpus-out/{prefix}", config, s3_server.env())
    kill_when(start_cli(*args), ready)
    finish(start_cli(*args))

    fs = s3_server.arrow_fs()
    assert_same_output(reference_output, output_tables(f"corpus-out/{prefix}", fs))
    names = {i.base_name for i in fs.get_file_info(FileSelector(f"corpus-out/{prefix}"))}
    assert names == {
        "data",
        "rejected",
        "duplicates",
        "index",
        "manifest.json",
        "report.html",
        "report.json",
    }
    with fs.open_input_stream(f"corpus-out/{prefix}/manifest.json") as f:
        assert_resumed(json.loads(f.read()), kill_point)


@pytest.mark.parametrize("damage", ["lost_a_row", "truncated"])
def test_a_staged_file_damaged_after_annotation_is_annotated_again(
    sample_dir, tmp_path, reference_output, damage
):
    """Killed once annotation was done; then a staged file lost a row (a
    valid file with the wrong count) or its tail (no footer). The re-run
    checks every staged file against its unit, annotates that unit again,
    and publishes the undisturbed output."""
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    config.write_text("{}\n")
    kill_when(
        start_cli(str(sample_dir), str(out), config),
        lambda: (out / "_staging" / "annotated.done").exists(),
    )
    staged = sorted((out / "_staging" / "annotated").glob("*.parquet"))[0]
    if damage == "lost_a_row":
        table = pq.read_table(staged)
        pq.write_table(table.slice(0, table.num_rows - 1), staged)
    else:
        staged.write_bytes(staged.read_bytes()[:-100])

    finish(start_cli(str(sample_dir), str(out), config))
    assert_same_output(reference_output, output_tables(str(out)))
    manifest = json.loads((out / "manifest.json").read_text())
    units = manifest["annotate"]["units"]
    assert manifest["annotate"]["units_reused"] == units - 1
    assert manifest["resumed_after"] is None  # a unit was annotated again
