"""Toy stages and steps that prove the contracts (tests/test_contracts.py).

Registering one is what a developer does in the source: one line appended to
stages.REGISTRY or steps.REGISTRY. The tests do it in a separate job process
and, through Ray's worker setup hook, in every worker of its own local Ray."""

from __future__ import annotations


def register_stage() -> None:
    from dedupe_at_scale import stages
    from toys.marker_stage import MarkerStage

    if MarkerStage not in stages.REGISTRY:
        stages.REGISTRY.append(MarkerStage)


def register_step() -> None:
    from dedupe_at_scale import steps
    from toys.longest_step import DropLongest

    if DropLongest not in steps.REGISTRY:
        steps.REGISTRY.append(DropLongest)


def on_first_verify_read(action) -> None:
    """Patch StagedGroup.read_kept so that the first read inside dedup's
    `_verify` task in this worker runs `action()` before reading (once per
    worker; the action decides whether it is the first in the run). The
    group, not each file: a group fetches its files in other threads, whose
    stacks do not hold `_verify`."""
    import sys

    from dedupe_at_scale.steps.base import StagedGroup

    read = StagedGroup.read_kept

    def read_after(self, columns):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "_verify":
            frame = frame.f_back
        if frame is not None:
            action()
        return read(self, columns)

    StagedGroup.read_kept = read_after


def first_in_run(marker: str, content: str = "") -> bool:
    """Whether this call made `marker` (created exclusively, with `content`)."""
    import os

    try:
        handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(handle, content.encode())
    os.close(handle)
    return True


def kill_in_dedup() -> None:
    """Not a registration: a worker setup hook that makes the first worker
    reading a staged file inside dedup's `_verify` task SIGKILL itself, once
    per run (a marker file, DDS_TEST_KILL_MARKER, records that it happened)."""
    import os
    import signal

    marker = os.environ["DDS_TEST_KILL_MARKER"]

    def die() -> None:
        if first_in_run(marker):
            os.kill(os.getpid(), signal.SIGKILL)

    on_first_verify_read(die)


def record_node() -> None:
    """Not a registration: a worker setup hook for run_on_nodes.py. Each
    worker records its node in DDS_TEST_NODE_LOG; with DDS_TEST_KILL_MARKER
    set, the first worker outside the head node to read a staged file inside
    dedup's `_verify` writes its node id there and waits, for the driver to
    kill that node under it."""
    import os
    import time

    import ray

    node = ray.get_runtime_context().get_node_id()
    log = os.environ["DDS_TEST_NODE_LOG"]
    with open(os.path.join(log, f"{node}-{os.getpid()}"), "w"):
        pass
    marker = os.environ.get("DDS_TEST_KILL_MARKER")
    if not marker or node == os.environ.get("DDS_TEST_HEAD_NODE"):
        return

    def wait_to_be_killed() -> None:
        if first_in_run(marker, node):
            time.sleep(60)  # the driver removes this node meanwhile

    on_first_verify_read(wait_to_be_killed)
