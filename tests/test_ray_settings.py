"""The job's Ray Data settings bound each operator's tasks in flight: with
its resource allocator off, Ray Data submitted every task of a pass at once,
and the driver held memory for each until it finished (docs/scaling.md)."""

from __future__ import annotations

import sys
import time

import pyarrow as pa
import pytest
import ray
from ray.data._internal.execution.backpressure_policy import (
    ENABLED_BACKPRESSURE_POLICIES,
    ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY,
    BackpressurePolicy,
)
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from dedupe_at_scale.job import ray_settings
from dedupe_at_scale.job.ray_settings import TasksInFlight, configure_ray_data, tasks_in_flight

TASKS = 48

# The read tasks below (and the spy, in the DataContext that Ray Data sends
# to its workers) are defined here, a module the workers cannot import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_tasks_in_flight_follows_the_slots_not_the_input():
    queued = ray_settings.TASKS_QUEUED
    assert tasks_in_flight(2, 1) == 2 * 2 + queued
    assert tasks_in_flight(2, 0.5) == 2 * 4 + queued
    assert tasks_in_flight(6_400, 1) == 2 * 6_400 + queued
    # A task asking no CPUs still counts: the driver holds memory for it.
    assert tasks_in_flight(2, 0) == tasks_in_flight(2, ray_settings.MIN_TASK_CPUS)


def test_configuring_twice_adds_the_bound_once():
    context = ray.data.DataContext().copy()
    configure_ray_data(context)
    configure_ray_data(context)
    policies = context.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY)
    assert policies.count(TasksInFlight) == 1
    assert all(p in policies for p in ENABLED_BACKPRESSURE_POLICIES)


class InFlightSpy(BackpressurePolicy):
    """Asked first, says yes: records each operator's tasks in flight at
    every scheduling step, whatever the policies after it decide."""

    seen: list[int] = []

    def can_add_input(self, op) -> bool:
        InFlightSpy.seen.append(op.num_active_tasks())
        return True


class SleepyUnits(Datasource):
    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        def read(i: int):
            time.sleep(0.02)
            yield pa.table({"i": [i]})

        meta = BlockMetadata(num_rows=1, size_bytes=8, exec_stats=None, input_files=None)
        return [ReadTask(lambda i=i: read(i), meta) for i in range(TASKS)]


def most_in_flight(bounded: bool) -> int:
    context = ray.data.DataContext.get_current().copy()
    configure_ray_data(context)
    policies = context.get_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY)
    if not bounded:
        policies = [p for p in policies if p is not TasksInFlight]
    context.set_config(ENABLED_BACKPRESSURE_POLICIES_CONFIG_KEY, [InFlightSpy, *policies])
    InFlightSpy.seen = []
    with ray.data.DataContext.current(context):
        ds = ray.data.read_datasource(SleepyUnits(), override_num_blocks=TASKS)
        rows = sorted(row["i"] for row in ds.iter_rows())
    assert rows == list(range(TASKS))
    return max(InFlightSpy.seen)


@pytest.mark.timeout(120)
def test_a_pass_never_has_more_tasks_in_flight_than_the_bound(ray_cluster, monkeypatch):
    monkeypatch.setattr(ray_settings, "TASKS_QUEUED", 2)
    cap = tasks_in_flight(ray.cluster_resources()["CPU"], 1)
    assert cap < TASKS
    # Without the bound Ray Data submits far more than it can run (the
    # check that this test can fail); with it, never more than the bound.
    assert most_in_flight(bounded=False) > cap
    assert 0 < most_in_flight(bounded=True) <= cap
