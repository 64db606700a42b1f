"""The Ray Data settings of every pass the job runs (job/pipeline.py sets
them on the driver's DataContext before the first pass)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import ray
from ray.data._internal.execution.backpressure_policy import (
    ENABLED_BACKPRESSURE_POLICIES,
    ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
    BackpressurePolicy,
)

if TYPE_CHECKING:
    from ray.data._internal.execution.interfaces.physical_operator import PhysicalOperator

# Tasks an operator may have submitted and not finished: twice as many as
# the cluster can run at once, and a fixed queue besides. On 2 CPUs tasks of
# tens of milliseconds ran as fast as with no bound once 32 or more could be
# in flight, not with 8 (docs/scaling.md); a large cluster's own slots
# keep its cores fed, so the queue need not grow with it.
TASKS_IN_FLIGHT_PER_SLOT = 2
TASKS_QUEUED = 32
# Below this a task's CPUs count as this (a zero-CPU task still costs the
# driver its memory).
MIN_TASK_CPUS = 0.25


def configure_ray_data(context: ray.data.DataContext) -> None:
    """Rows in input order whatever the workers; no per-operator reservation,
    and each operator's tasks in flight bounded by the cluster's CPUs."""
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
    # Without the allocator nothing else limits what Ray Data submits: it
    # submitted every task of a pass at once, and the driver held about 33 KB
    # per submitted task until the task finished (docs/scaling.md).
    policies = context.get_config(
        ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, ENABLED_BACKPRESSURE_POLICIES
    )
    if TasksInFlight not in policies:
        context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, [*policies, TasksInFlight])


def tasks_in_flight(cluster_cpus: float, task_cpus: float) -> int:
    """The most tasks asking `task_cpus` CPUs each that an operator may have
    in flight on a cluster of `cluster_cpus` CPUs."""
    slots = max(cluster_cpus, 1.0) / max(task_cpus, MIN_TASK_CPUS)
    return math.ceil(TASKS_IN_FLIGHT_PER_SLOT * slots) + TASKS_QUEUED


class TasksInFlight(BackpressurePolicy):
    """Holds back an operator's next task while it has `tasks_in_flight`
    tasks submitted and not finished."""

    def can_add_input(self, op: PhysicalOperator) -> bool:
        cluster_cpus = self._resource_manager.get_global_limits().cpu or 1.0
        task_cpus = op.incremental_resource_usage().cpu or 0.0
        return op.num_active_tasks() < tasks_in_flight(cluster_cpus, task_cpus)
