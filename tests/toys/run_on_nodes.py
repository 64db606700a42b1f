"""python tests/toys/run_on_nodes.py NODES INPUT OUTPUT NODE_LOG [kill]: the
job (default config) on a multi-node Ray on this machine, a head and NODES-1
worker nodes of one CPU each, each its own raylet and object store
(ray.cluster_utils.Cluster). With `kill`, the worker node running one of
dedup's verify tasks is removed (its raylet and workers killed) while the
task runs; the job must finish all the same."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

nodes, input_uri, output_uri, node_log = int(sys.argv[1]), *sys.argv[2:5]
kill = sys.argv[5:] == ["kill"]
STORE = 300 * 2**20  # object store per node: four of them on a small machine
# Killing: no CPU on the head, so that every task (dedup's verify tasks
# among them) runs on a worker node that can be removed.
head_cpus = 0 if kill else 1
cluster = Cluster(
    initialize_head=True, head_node_args={"num_cpus": head_cpus, "object_store_memory": STORE}
)
workers = [cluster.add_node(num_cpus=1, object_store_memory=STORE) for _ in range(nodes - 1)]
cluster.wait_for_nodes()
marker = os.path.join(node_log, "killed")
env = {
    "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    "DDS_TEST_NODE_LOG": node_log,
    "DDS_TEST_HEAD_NODE": cluster.head_node.node_id,
    "DDS_TEST_KILL_MARKER": marker if kill else "",
}
ray.init(address=cluster.address, logging_level="ERROR",
         runtime_env={"worker_process_setup_hook": "toys.record_node", "env_vars": env})  # fmt: skip
ray.data.DataContext.get_current().enable_progress_bars = False


def kill_the_marked_node() -> None:
    while not os.path.exists(marker) or not Path(marker).read_text():
        time.sleep(0.05)
    node_id = Path(marker).read_text()
    (victim,) = [n for n in workers if n.node_id == node_id]
    cluster.remove_node(victim, allow_graceful=False)
    Path(marker + ".done").write_text(node_id)


if kill:
    threading.Thread(target=kill_the_marked_node, daemon=True).start()
try:
    run_job(input_uri, output_uri, config_from_dict({}))
finally:
    ray.shutdown()
    cluster.shutdown()
