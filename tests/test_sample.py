from collections import Counter

import pyarrow.parquet as pq

from dedupe_at_scale.cli import build_parser
from dedupe_at_scale.sample import generate_sample


def test_default_sample_size_meets_the_demo_contract():
    args = build_parser().parse_args(["generate", "--output", "x"])
    assert args.docs >= 5000 and args.shards >= 8


def test_sample_languages_kinds_and_cross_shard_duplicates(tmp_path):
    paths = generate_sample(tmp_path, docs=1200, shards=8, seed=3)
    assert len(paths) == 8
    rows = []
    for shard, path in enumerate(paths):
        for row in pq.read_table(path).to_pylist():
            rows.append({**row, "shard": shard})
    assert len(rows) == 1200
    assert len({r["id"] for r in rows}) == 1200
    assert len({r["language_planted"] for r in rows if r["sample_kind"] == "clean"}) >= 6
    kinds = Counter(r["sample_kind"] for r in rows)
    for kind in ["exact_dup", "near_dup", "short", "spam", "boilerplate", "gibberish", "lorem"]:
        assert kinds[kind] > 0, kind
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if r["sample_kind"] in ("exact_dup", "near_dup"):
            original = by_id[r["dup_of"]]
            assert original["sample_kind"] == "clean"
            assert original["shard"] != r["shard"]
            assert (r["text"] == original["text"]) == (r["sample_kind"] == "exact_dup")


def test_sample_is_deterministic(tmp_path):
    a = generate_sample(tmp_path / "a", docs=300, shards=2, seed=1)
    b = generate_sample(tmp_path / "b", docs=300, shards=2, seed=1)
    assert all(pq.read_table(x).equals(pq.read_table(y)) for x, y in zip(a, b))
