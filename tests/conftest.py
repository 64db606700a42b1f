"""Shared fixtures. Tests marked `ray` use one real local Ray per session
(2 CPUs, as on CI) and are bounded by pytest-timeout."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

GOOD_EN = (
    "The river that runs through the old town has always shaped the life of its people.\n"
    "Farmers brought their grain to the mills on its banks, and merchants carried wool to the coast.\n"
    "In the spring the water rises quickly, so the town built stone walls to protect the market.\n\n"
    "Today the mills have become a museum that explains how the valley grew over four centuries.\n"
    "Visitors can walk along the path by the water and read the history of each bridge.\n"
    "Children learn how the floods of the past changed the shape of the streets they know."
)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from dedupe_at_scale.sample import generate_sample

    path = tmp_path_factory.mktemp("sample")
    generate_sample(path, docs=2000, shards=8, seed=7)
    return path


def write_table(path: Path, columns: dict, schema: pa.Schema | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path, **kwargs)
    return path
