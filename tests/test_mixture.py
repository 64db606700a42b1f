"""Mixture weighting: plans on numpy (no Ray) and the job on a local Ray."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import ConfigError, MixtureConfig, config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.steps.mixture import draws, expand_copies, histogram, plan


def test_draws_are_uniform_stable_and_seeded():
    ids = pa.array([f"doc{i}" for i in range(50_000)])
    u = draws(ids, seed=0)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert (draws(ids, seed=0) == u).all()
    assert not (draws(ids, seed=1) == u).any()
    assert (
        draws(pa.array(list(range(10))), 0) == draws(pa.array([str(i) for i in range(10)]), 0)
    ).all()


def plan_for(weights, sizes, **kw):
    groups = np.concatenate([[g] * n for g, n in sizes.items()]).astype(object)
    u = draws(pa.array([f"d{i}" for i in range(len(groups))]), 0)
    plans = plan(
        MixtureConfig(enabled=True, weights=weights, **kw), histogram(groups, u, np.ones(len(u)))
    )
    return {g: int(p.copies(u[groups == g]).sum()) for g, p in plans.items()}, plans


def test_largest_mix_without_upsampling():
    selected, _ = plan_for({"a": 0.5, "b": 0.5}, {"a": 6000, "b": 4000})
    # b is the scarce group; thresholds are exact to within one histogram bin.
    assert selected["b"] == 4000 and abs(selected["a"] - 4000) <= 2


def test_total_budget_upsamples_up_to_the_cap():
    selected, plans = plan_for(
        {"a": 0.2, "b": 0.8}, {"a": 6000, "b": 4000}, total=10_000, max_repeats=3
    )
    assert selected["b"] == 8000 and abs(selected["a"] - 2000) <= 2
    assert plans["b"].base == 2
    short, plans = plan_for(
        {"a": 0.2, "b": 0.8}, {"a": 6000, "b": 4000}, total=10_000, max_repeats=1
    )
    assert short["b"] == 4000 and plans["b"].target == 8000  # capped: the target is missed


def test_expand_copies_marks_repeats():
    table = pa.table(
        {"id": ["x", "y", "z"], "__dds_copies": [2, 0, 1], "__dds_order": [0.1, 0.2, 0.3]}
    )
    out = expand_copies(table)
    assert out.column("id").to_pylist() == ["x", "x", "z"]
    assert out.column("mixture_repeat").to_pylist() == [0, 1, 0]


def test_config_checks():
    with pytest.raises(ConfigError, match="mixture.weights"):
        config_from_dict({"mixture": {"enabled": True}})
    with pytest.raises(ConfigError, match="mixture.max_repeats"):
        config_from_dict({"mixture": {"max_repeats": 0}})


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_job_hits_target_proportions(ray_cluster, sample_dir, tmp_path):
    from dedupe_at_scale.job.pipeline import run_job

    weights = {"web": 0.4, "news": 0.3, "forum": 0.2, "encyclopedia": 0.1}
    cfg = config_from_dict(
        {
            "langid": {"enabled": False},
            "mixture": {"enabled": True, "group_column": "source", "weights": weights,
                        "unit": "words", "total": 150_000, "max_repeats": 3},
            "output": {"rows_per_shard": 300},
        }
    )  # fmt: skip
    result = run_job(str(sample_dir), str(tmp_path / "out"), cfg)
    data = pq.read_table(tmp_path / "out" / "data")
    words = Counter()
    for source, text in zip(data.column("source").to_pylist(), data.column("text").to_pylist()):
        words[source] += len(text.split())
    total = sum(words.values())
    for group, weight in weights.items():
        assert abs(words[group] / total - weight) < 0.01, (group, words[group] / total)
    # Repeats are marked and capped; the first copy of each document is repeat 0.
    repeats = Counter(zip(data.column("id").to_pylist(), data.column("mixture_repeat").to_pylist()))
    assert max(r for _, r in repeats) <= 2 and all(n == 1 for n in repeats.values())
    # Every shard carries the mixture.
    for shard in result.manifest["output"]["data"]:
        sources = set(
            pq.read_table(tmp_path / "out" / shard["path"], columns=["source"])
            .column("source")
            .to_pylist()
        )
        assert sources == set(weights), shard
    mixture = result.manifest["mixture"]
    assert all(not g["short_of_target"] for g in mixture["groups"].values())
    counts = result.manifest["counts"]
    assert counts["input"] == counts["kept"] + counts["rejected"]


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_shortfall_is_reported(ray_cluster, sample_dir, tmp_path):
    from dedupe_at_scale.job.pipeline import run_job

    cfg = config_from_dict(
        {
            "langid": {"enabled": False},
            "quality": {"enabled": False},
            "mixture": {
                "enabled": True,
                "weights": {"web": 0.5, "encyclopedia": 0.5},
                "total": 1000,
            },
        }
    )
    result = run_job(str(sample_dir), str(tmp_path / "out"), cfg)
    groups = result.manifest["mixture"]["groups"]
    assert groups["encyclopedia"]["short_of_target"] and not groups["web"]["short_of_target"]
    assert any("encyclopedia" in w for w in result.manifest["mixture"]["warnings"])
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    rules = Counter(r["rule"] for r in rejected if r["stage"] == "mixture")
    assert rules["mixture_group_not_weighted"] > 0  # news and forum have no weight
    json.dumps(result.manifest)  # the manifest stays plain JSON


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_the_output_order_does_not_depend_on_ray_s_shuffle(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    """Small inputs are sorted by the pull-based shuffle (job/write.sort_strategy);
    Ray's default shuffle, which large inputs get, writes the same shards."""
    from ray.data.context import ShuffleStrategy

    from dedupe_at_scale.job import write
    from dedupe_at_scale.job.pipeline import run_job

    cfg = config_from_dict(
        {
            "quality": {"enabled": False},
            "mixture": {"enabled": True, "group_column": "source",
                        "weights": {"web": 0.6, "news": 0.4}, "max_repeats": 2},
            "output": {"rows_per_shard": 200},
        }
    )  # fmt: skip

    def data_shards(out):
        paths = sorted((out / "data").glob("*.parquet"))
        return [(p.name, pq.read_table(p).to_pylist()) for p in paths]

    default = ray_cluster.data.DataContext.get_current().shuffle_strategy
    assert default == ShuffleStrategy.SHUFFLE_V2  # Ray 2.60's
    assert write.sort_strategy(8, default) == ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    run_job(str(sample_dir), str(tmp_path / "pull"), cfg)
    monkeypatch.setattr(write, "PULL_SORT_MAX_BLOCKS", 0)
    assert write.sort_strategy(8, default) == default
    run_job(str(sample_dir), str(tmp_path / "default"), cfg)
    pulled = data_shards(tmp_path / "pull")
    assert len(pulled) > 2 and pulled == data_shards(tmp_path / "default")


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_sorted_output_is_the_same_bytes_at_every_run(ray_cluster, sample_dir, tmp_path):
    # The sort's range boundaries are sampled at random; each shard is
    # still one row group, so two runs write the same files.
    cfg = {
        "input": {"rows_per_task": 120},
        "mixture": {"enabled": True, "weights": {"web": 0.5, "news": 0.3, "forum": 0.2}},
        "output": {"rows_per_shard": 300, "splits": {"train": 0.9, "test": 0.1}},
    }
    runs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        run_job(str(sample_dir), str(out), config_from_dict(cfg))
        runs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet")
                     if p.parts[len(out.parts)] in ("data", "splits")})  # fmt: skip
    assert len(runs[0]) > 2
    assert runs[0] == runs[1]


@pytest.mark.ray
def test_histograms_folded_in_tasks_are_the_plain_sum(ray_cluster):
    import ray

    from dedupe_at_scale.io.fanout import fold_refs
    from dedupe_at_scale.steps.tasks import sum_by_key

    rng = np.random.default_rng(5)
    parts = [
        histogram(
            rng.choice(["web", "news", "forum"], 60).astype(object),
            rng.random(60),
            rng.integers(0, 5000, 60).astype(np.float64),
        )  # fmt: skip
        for _ in range(75)
    ]
    plain: dict[str, np.ndarray] = {}
    for part in parts:
        for group, hist in part.items():
            plain[group] = plain.get(group, 0) + hist
    # 75 parts, 4 at a time: three rounds of tasks before the driver's fold.
    folded = fold_refs([ray.put(p) for p in parts], sum_by_key, fan_in=4)
    assert folded.keys() == plain.keys()
    assert all(np.array_equal(folded[g], plain[g]) for g in plain)
    assert fold_refs([], sum_by_key) == {}
