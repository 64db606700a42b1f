"""python tests/toys/run_job.py stage|step INPUT OUTPUT: the job on its own
local Ray, with the toy stage or step registered in the driver and workers."""

from __future__ import annotations

import os
import sys

import ray

import toys
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

kind, input_uri, output_uri = sys.argv[1:4]
hook = f"toys.register_{kind}"
getattr(toys, f"register_{kind}")()
ray.init(
    address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
    runtime_env={
        "worker_process_setup_hook": hook,
        "env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    },
)  # fmt: skip
ray.data.DataContext.get_current().enable_progress_bars = False
run_job(input_uri, output_uri, config_from_dict({"dedup": {"enabled": False}}))
