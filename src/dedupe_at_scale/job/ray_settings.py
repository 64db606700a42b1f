"""The Ray Data settings of every pass the job runs (job/pipeline.py sets
them on the driver's DataContext before the first pass)."""

from __future__ import annotations

import ray


def configure_ray_data(context: ray.data.DataContext) -> None:
    """Rows in input order whatever the workers; no per-operator reservation."""
    context.execution_options.preserve_order = True
    # Ray Data's allocator reserves each operator of a pass at least one
    # task's CPUs and splits the rest evenly between them. The write pass's
    # last operator waits for whole shards (output.rows_per_shard), so its
    # share sat idle: on 2 CPUs the staged files were read one at a time
    # (docs/performance.md). The job's passes are chains of tasks, with no
    # actor pool to starve. Without it Ray Data budgets no object-store memory
    # per operator: rows read ahead of the writes wait in the object store,
    # which spills to disk when full.
    context.op_resource_reservation_enabled = False
