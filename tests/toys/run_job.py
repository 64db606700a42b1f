"""python tests/toys/run_job.py stage|step|kill_in_dedup INPUT OUTPUT [CONFIG_JSON [again]]:
the job on its own local Ray, with the toy stage or step registered in the
driver and workers (dedup off), or with a worker killed during dedup (default
config); CONFIG_JSON adds sections to the config; `again` runs it a second
time over the first's output, as --overwrite does."""

from __future__ import annotations

import json
import os
import sys

import ray

import toys
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

kind, input_uri, output_uri = sys.argv[1:4]
if kind == "kill_in_dedup":
    hook, config = "toys.kill_in_dedup", {}
else:
    hook, config = f"toys.register_{kind}", {"dedup": {"enabled": False}}
    getattr(toys, f"register_{kind}")()
config.update(json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
ray.init(
    address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
    runtime_env={
        "worker_process_setup_hook": hook,
        "env_vars": {
            name: os.environ.get(name, "") for name in ("PYTHONPATH", "DDS_TEST_KILL_MARKER")
        },
    },
)  # fmt: skip
ray.data.DataContext.get_current().enable_progress_bars = False
run_job(input_uri, output_uri, config_from_dict(config))
if sys.argv[5:] == ["again"]:
    run_job(input_uri, output_uri, config_from_dict(config), overwrite=True)
