"""One writer per output (io/lease.py): a second run is refused at once,
naming the run that holds the output; a lease whose process is gone, or that
was not renewed in time, is taken over with a warning."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import GOOD_EN, write_table
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.inputs import InputError
from dedupe_at_scale.io.lease import OutputBusyError
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.plan import plan_job
from test_failures import finish, start_cli


def write_lease(location, path: str, **fields) -> None:
    record = {"host": socket.gethostname(), "pid": 1, "started": "2026-01-01T00:00:00+00:00",
              "token": "theirs", "renewed": time.time(), **fields}  # fmt: skip
    location.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with location.fs.open(path, "wb") as handle:
        handle.write(json.dumps(record).encode())


def gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(sample_dir, tmp_path):
    out = str(tmp_path / "out")
    first = plan_job(str(sample_dir), out, config_from_dict({}))
    try:
        with pytest.raises(OutputBusyError) as caught:
            plan_job(str(sample_dir), out, config_from_dict({}))
        message = str(caught.value)
        assert f"host {socket.gethostname()}, pid {first.lease.record['pid']}" in message
        assert f"started {first.lease.record['started']}" in message
        assert "_staging/lease.json" in message
    finally:
        first.lease.release()
    # Given back: the next run takes the output.
    plan_job(str(sample_dir), out, config_from_dict({})).lease.release()
    assert not (tmp_path / "out" / "_staging" / "lease.json").exists()


def test_a_lease_whose_process_is_gone_is_taken_over_with_a_warning(sample_dir, tmp_path, caplog):
    out = tmp_path / "out"
    location = resolve(str(out))
    write_lease(location, str(out / "_staging" / "lease.json"), pid=gone_pid())
    with caplog.at_level(logging.WARNING):
        plan = plan_job(str(sample_dir), str(out), config_from_dict({}))
    try:
        assert "taking over the lease of a run that is gone" in caplog.text
        held = json.loads((out / "_staging" / "lease.json").read_text())
        assert held["token"] == plan.lease.token
    finally:
        plan.lease.release()


def test_on_object_storage_a_lease_not_renewed_in_time_is_taken_over(
    object_store, sample_dir, caplog
):
    s3_server = object_store
    cfg = config_from_dict(
        {"storage": s3_server.storage(), "output": {"lease_timeout_seconds": 60}}
    )
    out = "s3://corpus-out/leased"
    location = resolve(out, cfg.storage)
    lease = "corpus-out/leased/_staging/lease.json"
    # Another host's lease, renewed just now: its process cannot be asked, so it holds.
    write_lease(location, lease, host="elsewhere", pid=4242)
    with pytest.raises(OutputBusyError, match="host elsewhere, pid 4242"):
        plan_job(str(sample_dir), out, cfg)
    # The same lease, last renewed two minutes ago: stale.
    write_lease(location, lease, host="elsewhere", pid=4242, renewed=time.time() - 120)
    with caplog.at_level(logging.WARNING):
        plan = plan_job(str(sample_dir), out, cfg)
    try:
        assert "taking over the lease" in caplog.text and "host elsewhere" in caplog.text
    finally:
        plan.lease.release()
    assert not location.fs.exists(lease)


@pytest.mark.ray  # the runs start their own local Ray
def test_a_run_started_while_another_writes_is_refused_and_the_first_completes(
    sample_dir, tmp_path
):
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({}))
    first = start_cli(str(sample_dir), str(out), config)
    lease = out / "_staging" / "lease.json"
    deadline = time.time() + 120
    while not lease.exists():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    second = start_cli(str(sample_dir), str(out), config)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 1, output[-2000:]
    assert "is being written by another run" in output and f"pid {first.pid}" in output
    finish(first)
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["input"] == 2000 == counts["kept"] + counts["rejected"]
    assert counts["kept"] == pq.read_table(out / "data").num_rows
    assert not (out / "_staging").exists()


def test_the_lease_is_given_back_when_a_run_fails(ray_cluster, tmp_path):
    root = tmp_path / "in"
    write_table(root / "a.parquet", {"id": ["a", "b"], "text": [GOOD_EN, None]})
    out = tmp_path / "out"
    with pytest.raises(InputError, match="row 1 has null text"):
        run_job(str(root), str(out), config_from_dict({}))
    assert not (out / "_staging" / "lease.json").exists()
    # Nothing holds the output: the same job, told to quarantine, runs.
    cfg = config_from_dict({"input": {"on_invalid_document": "quarantine"}})
    run_job(str(root), str(out), cfg)
    assert (out / "manifest.json").exists()


def _store_args(store, tmp_path, sample_dir, name: str, timeout: float):
    """(input, output, config path, env, a listing of the output) for a run
    of the sample on local disk (store None) or on an S3 server."""
    section = {"output": {"lease_timeout_seconds": timeout}}
    if store is None:
        out = tmp_path / name
        listing = lambda: sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # noqa: E731
        args = (str(sample_dir), str(out), {}, listing)
    else:
        store.upload_dir(sample_dir, "corpus-in", name)
        section["storage"] = {"endpoint_url": store.endpoint}
        client = store.client()

        def listing() -> list[str]:
            found = client.list_objects_v2(Bucket="corpus-out", Prefix=f"{name}/")
            return sorted(o["Key"][len(name) + 1 :] for o in found.get("Contents", []))

        args = (f"s3://corpus-in/{name}", f"s3://corpus-out/{name}", store.env(), listing)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(section))
    return args[0], args[1], config, args[2], args[3]


@pytest.mark.ray  # the runs start their own local Ray
@pytest.mark.timeout(500)
@pytest.mark.parametrize("where", ["local", "moto", "seaweedfs"])
def test_a_run_stalled_past_its_lease_is_fenced_off(where, request, sample_dir, tmp_path):
    """The first run is frozen (SIGSTOP) once annotation is done, past its
    lease timeout; a second run takes over and completes. The first, thawed
    (SIGCONT), finds the lease gone at its next renewal or commit step: it
    exits with an error saying so and changes nothing in the output."""
    store = None if where == "local" else request.getfixturevalue(
        {"moto": "s3_server", "seaweedfs": "seaweedfs_server"}[where])  # fmt: skip
    source, out, config, env, listing = _store_args(
        store, tmp_path, sample_dir, f"fenced-{where}", 3
    )
    first = start_cli(source, out, config, env)
    try:
        wait_for(first, lambda: "_staging/annotated.done" in listing())
        os.killpg(first.pid, signal.SIGSTOP)
        time.sleep(4)  # past the timeout: the lease is stale
        second = start_cli(source, out, config, env)
        output = finish(second)
        assert "taking over the lease" in output
        published = listing()
        assert "manifest.json" in published and not any(p.startswith("_staging") for p in published)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 1, output[-3000:]
    error = [line for line in output.splitlines() if line.startswith("error:")]
    assert error and "lost its lease on the output to another run" in error[-1], output[-3000:]
    assert "without publishing anything" in error[-1]
    assert listing() == published, set(listing()) ^ set(published)  # the first changed nothing


def wait_for(proc, ready, timeout: float = 200) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"job ended first:\n{proc.stdout.read()}"
        assert time.time() < deadline, "never ready"
        time.sleep(0.05)


# Not on moto: its server checks If-Match and then writes without a lock
# (moto/s3/responses.py put_object, moto 5.2.5), so two racing conditional
# writes can both pass; seen once in CI, two of eight won. AWS S3 and
# SeaweedFS apply the condition and the write as one step.
@pytest.mark.parametrize("where", ["local", "seaweedfs"])
def test_runs_racing_for_a_stale_lease_take_it_one_at_a_time(where, request, tmp_path):
    """Eight runs take over the same stale lease at once: the store's
    compare-and-swap (flock and rename, or S3 conditional writes) lets one
    win; the others are refused naming it, and the loser's renewal or
    commit check finds it holds nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from dedupe_at_scale.io.lease import Lease, LeaseLostError

    if where == "local":
        location, path = (
            resolve(str(tmp_path / "out")),
            str(tmp_path / "out" / "_staging" / "lease.json"),
        )
    else:
        store = request.getfixturevalue(
            {"moto": "s3_server", "seaweedfs": "seaweedfs_server"}[where]
        )
        cfg = config_from_dict({"storage": store.storage()})
        location = resolve(f"s3://corpus-out/race-{where}", cfg.storage)
        path = f"corpus-out/race-{where}/_staging/lease.json"
    write_lease(location, path, host="elsewhere", renewed=time.time() - 600)
    leases = [Lease(location, path, timeout_seconds=60) for _ in range(8)]

    def take(lease: Lease) -> bool:
        try:
            lease.acquire()
            return True
        except OutputBusyError:
            return False

    with ThreadPoolExecutor(len(leases)) as pool:
        won = list(pool.map(take, leases))
    try:
        assert won.count(True) == 1, won
        winner = leases[won.index(True)]
        winner.check()  # holds
        loser = leases[won.index(False)]
        with pytest.raises(LeaseLostError, match=f"pid {winner.record['pid']}"):
            loser.renew()
    finally:
        for lease in leases:
            lease.release()
    assert not location.fs.exists(path)
