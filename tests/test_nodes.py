"""A local multi-node Ray cluster on this machine (several raylets, each with
its own object store): the output is the single-node output whatever the
nodes, the tasks spread over them, and a worker node killed in the middle of
dedup changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_same_output, output_tables

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]
TESTS = Path(__file__).parent


def run_on_nodes(nodes: int, sample_dir: Path, out: Path, log: Path, *more: str) -> None:
    log.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(TESTS / "toys" / "run_on_nodes.py"), str(nodes), str(sample_dir),
         str(out), str(log), *more],
        capture_output=True, text=True, timeout=360, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def nodes_used(log: Path) -> set[str]:
    return {
        p.name.split("-")[0]
        for p in log.iterdir()
        if "-" in p.name and not p.name.startswith("killed")
    }


@pytest.mark.parametrize("nodes", [2, 4])
def test_the_output_does_not_depend_on_the_nodes(nodes, sample_dir, tmp_path, reference_output):
    run_on_nodes(nodes, sample_dir, tmp_path / "out", tmp_path / "log")
    assert_same_output(reference_output, output_tables(str(tmp_path / "out")))
    assert len(nodes_used(tmp_path / "log")) == nodes  # workers ran on every node


def test_a_node_killed_during_dedup_changes_nothing(sample_dir, tmp_path, reference_output):
    log = tmp_path / "log"
    run_on_nodes(3, sample_dir, tmp_path / "out", log, "kill")
    killed = (log / "killed.done").read_text()
    assert killed and killed in nodes_used(log)  # a worker node ran dedup and was removed
    assert_same_output(reference_output, output_tables(str(tmp_path / "out")))
