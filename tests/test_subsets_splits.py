"""Nested subsets and held-out splits on the built-in sample with a mixture:
subsets nested, keeping the mix within 1 point, shards mixed, copies kept
together, the same whatever the parallelism; splits disjoint, covering data/,
and no duplicate cluster across two of them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.cli import main
from dedupe_at_scale.config import ConfigError, load_config
from test_job import write_config

MIXTURE = {
    "enabled": True, "group_column": "source", "unit": "words", "max_repeats": 3,
    "weights": {"web": 0.4, "news": 0.3, "forum": 0.2, "encyclopedia": 0.1},
}  # fmt: skip
FRACTIONS = [0.25, 0.5, 1.0]


def run(sample_dir: Path, out: Path, spec: dict) -> dict:
    config = write_config(out.parent / f"{out.name}.yaml", spec)
    args = ["run", "--input", str(sample_dir), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    return json.loads((out / "manifest.json").read_text())


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).select(["id", "source", "mixture_repeat", "text"]).to_pylist()


def words(row: dict) -> int:
    return len(row["text"].split())


def shares(table: list[dict]) -> dict[str, float]:
    total = sum(words(r) for r in table)
    by = Counter()
    for r in table:
        by[r["source"]] += words(r)
    return {g: n / total for g, n in by.items()}


@pytest.fixture(scope="module")
def subsets_run(ray_cluster, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("subsets") / "out"
    spec = {
        "mixture": {**MIXTURE, "total": 400_000},
        "output": {"subsets": FRACTIONS, "rows_per_shard": 150},
    }
    return out, run(sample_dir, out, spec)


def test_subsets_are_nested_and_keep_the_mix(subsets_run):
    out, manifest = subsets_run
    data = rows(out / "data")
    full = shares(data)
    assert sum(r["mixture_repeat"] > 0 for r in data) > 0, "the mixture upsampled nothing"
    previous: set = set()
    copies_in_data = Counter(r["id"] for r in data)
    for f in FRACTIONS:
        name = f"{100 * f:g}"
        subset = rows(out / "subsets" / name)
        ids = {r["id"] for r in subset}
        assert previous <= ids, f"subset {name} misses documents of a smaller one"
        previous = ids
        # A document keeps all its mixture copies in every subset.
        assert Counter(r["id"] for r in subset) == {i: copies_in_data[i] for i in ids}
        got = shares(subset)
        for group, share in full.items():
            assert abs(got.get(group, 0.0) - share) < 0.01, (name, group, got, full)
        size = sum(words(r) for r in subset) / sum(words(r) for r in data)
        assert abs(size - f) < 0.01, (name, size)
        section = manifest["subsets"]["subsets"][name]
        assert section["rows_written"] == len(subset)
        assert section["max_share_deviation_points"] < 1.0
        listed = sum(s["rows"] for s in manifest["output"][f"subsets/{name}"])
        assert listed == len(subset)
    assert sorted((r["id"], r["mixture_repeat"]) for r in rows(out / "subsets" / "100")) == sorted(
        (r["id"], r["mixture_repeat"]) for r in data
    )


def test_subset_shards_are_mixed(subsets_run):
    out, _ = subsets_run
    for f in FRACTIONS:
        shards = sorted((out / "subsets" / f"{100 * f:g}").glob("*.parquet"))
        assert len(shards) >= 2
        for shard in shards:
            table = pq.read_table(shard, columns=["source"])
            assert 100 <= table.num_rows <= 150, shard
            assert len(set(table.column("source").to_pylist())) == 4, shard


def test_subsets_do_not_depend_on_parallelism(subsets_run, sample_dir, tmp_path):
    out, _ = subsets_run
    spec = {
        "mixture": {**MIXTURE, "total": 400_000},
        "output": {"subsets": FRACTIONS, "rows_per_shard": 150},
        "input": {"rows_per_task": 97},
        "dedup": {"partitions": 3},
    }
    other = tmp_path / "again"
    run(sample_dir, other, spec)
    for f in FRACTIONS:
        name = f"{100 * f:g}"
        assert rows(other / "subsets" / name) == rows(out / "subsets" / name)


def test_splits_are_disjoint_and_keep_clusters_whole(ray_cluster, sample_dir, tmp_path):
    """dedup.remove: false keeps every duplicate, so clusters have several
    members in data/: each cluster must sit in one split."""
    splits = {"train": 0.8, "validation": 0.1, "test": 0.1}
    spec = {"dedup": {"remove": False}, "output": {"splits": splits, "subsets": [0.5, 1.0]}}
    out = tmp_path / "out"
    manifest = run(sample_dir, out, spec)
    data = pq.read_table(out / "data").to_pylist()
    assert manifest["dedup"]["exact_duplicates_removed"] == 0
    split_of = {}
    for name in splits:
        for r in pq.read_table(out / "splits" / name).to_pylist():
            assert r["split"] == name
            assert r["id"] not in split_of, f"{r['id']} is in two splits"
            split_of[r["id"]] = name
    assert set(split_of) == {r["id"] for r in data}
    assert {r["id"]: r["split"] for r in data} == split_of
    clusters: dict[str, set] = {}
    members: Counter = Counter()
    for d in pq.read_table(out / "duplicates").to_pylist():
        clusters.setdefault(d["cluster_id"], set()).add(split_of[d["id"]])
        members[d["cluster_id"]] += 1
    assert sum(n >= 2 for n in members.values()) > 20, "the sample should have duplicate clusters"
    assert all(len(s) == 1 for s in clusters.values())
    for name, share in splits.items():
        got = manifest["splits"]["splits"][name]
        assert got["documents"] == sum(1 for v in split_of.values() if v == name)
        assert abs(got["achieved_share"] - share) < 0.05
    # Subsets are drawn from train only.
    half = {r["id"] for r in pq.read_table(out / "subsets" / "50").to_pylist()}
    assert half and all(split_of[i] == "train" for i in half)
    assert {r["id"] for r in pq.read_table(out / "subsets" / "100").to_pylist()} == {
        i for i, s in split_of.items() if s == "train"
    }


@pytest.mark.parametrize(
    "output, message",
    [
        ({"subsets": [0.5, 1.5]}, "output.subsets.*within"),
        ({"subsets": [0.5, 0.5]}, "repeats"),
        ({"splits": {"train": 0.9, "test": 0.2}}, "sum to 1"),
        ({"splits": {"train/x": 0.5, "test": 0.5}}, "directories"),
    ],
)
def test_bad_subsets_and_splits_are_config_errors(tmp_path, output, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path / "c.yaml", {"output": output}))


def test_splits_that_lose_a_row_of_data_are_not_committed():
    """The commit's check (GlobalStep.check_outputs): the splits' shards hold
    data/'s rows exactly; with splits off, nothing is asked of them."""
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.accounting import AccountingError
    from dedupe_at_scale.job.pipeline import check_step_outputs

    cfg = config_from_dict({"output": {"splits": {"train": 0.8, "test": 0.2}}})
    data = [{"rows": 6}, {"rows": 4}]
    whole = {"splits/train": [{"rows": 5}, {"rows": 3}], "splits/test": [{"rows": 2}]}
    check_step_outputs(cfg, data, whole)
    short = {**whole, "splits/test": [{"rows": 1}]}
    with pytest.raises(AccountingError, match="splits/ hold 9 rows, data/ 10"):
        check_step_outputs(cfg, data, short)
    check_step_outputs(config_from_dict({}), data, {})
