from collections import Counter

import pyarrow.parquet as pq

from dedupe_at_scale.cli import build_parser, main
from dedupe_at_scale.sample import SAMPLE_SCHEMA, generate_sample
from dedupe_at_scale.sample.streaming import generate_streaming


def _rows(paths):
    return [
        {**row, "shard": shard}
        for shard, path in enumerate(paths)
        for row in pq.read_table(path).to_pylist()
    ]


def _assert_duplicates_copy_a_clean_original_in_another_shard(rows):
    """Every planted duplicate copies a clean document of another shard,
    word for word exactly when it is an exact one."""
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if r["sample_kind"] in ("exact_dup", "near_dup"):
            original = by_id[r["dup_of"]]
            assert original["sample_kind"] == "clean"
            assert original["shard"] != r["shard"]
            assert (r["text"] == original["text"]) == (r["sample_kind"] == "exact_dup")


def test_default_sample_size_meets_the_demo_contract():
    args = build_parser().parse_args(["generate", "--output", "x"])
    assert args.docs >= 5000 and args.shards >= 8


def test_sample_languages_kinds_and_cross_shard_duplicates(tmp_path):
    paths = generate_sample(tmp_path, docs=1200, shards=8, seed=3)
    assert len(paths) == 8
    rows = _rows(paths)
    assert len(rows) == 1200
    assert len({r["id"] for r in rows}) == 1200
    assert len({r["language_planted"] for r in rows if r["sample_kind"] == "clean"}) >= 6
    kinds = Counter(r["sample_kind"] for r in rows)
    for kind in ["exact_dup", "near_dup", "short", "spam", "boilerplate", "gibberish", "lorem"]:
        assert kinds[kind] > 0, kind
    _assert_duplicates_copy_a_clean_original_in_another_shard(rows)


def test_sample_is_deterministic(tmp_path):
    a = generate_sample(tmp_path / "a", docs=300, shards=2, seed=1)
    b = generate_sample(tmp_path / "b", docs=300, shards=2, seed=1)
    assert all(pq.read_table(x).equals(pq.read_table(y)) for x, y in zip(a, b))


def test_streaming_corpus_is_the_same_whatever_the_processes(tmp_path):
    one = generate_streaming(tmp_path / "one", docs=900, shards=3, seed=2, processes=1)
    two = generate_streaming(tmp_path / "two", docs=900, shards=3, seed=2, processes=2)
    assert all(pq.read_table(a).equals(pq.read_table(b)) for a, b in zip(one, two))
    assert [pq.ParquetFile(p).metadata.num_rows for p in one] == [300, 300, 300]
    empty = generate_streaming(tmp_path / "empty", docs=2, shards=3)
    assert pq.read_table(empty[2]).schema.equals(SAMPLE_SCHEMA)


def test_streaming_corpus_plants_cross_shard_duplicates(tmp_path):
    rows = _rows(generate_streaming(tmp_path, docs=4000, shards=5, seed=4))
    assert len({r["id"] for r in rows}) == 4000
    kinds = Counter(r["sample_kind"] for r in rows)
    assert 150 < kinds["exact_dup"] < 250 and 150 < kinds["near_dup"] < 250  # 5% each
    _assert_duplicates_copy_a_clean_original_in_another_shard(rows)


def test_streaming_corpus_documents_share_almost_no_shingles(tmp_path):
    """What keeps dedup's candidate pairs per document flat as the corpus
    grows: unrelated documents of one language overlap far less than the
    sample's, whose sentence parts come from a small bank."""

    def overlaps(rows):
        english = [
            r["text"] for r in rows if r["sample_kind"] == "clean" and r["language_planted"] == "en"
        ]
        shingles = [
            {tuple(w[i : i + 5]) for i in range(len(w) - 4)}
            for w in (t.split() for t in english[:80])
        ]
        return [len(a & b) / len(a | b) for i, a in enumerate(shingles) for b in shingles[i + 1 :]]

    ours = overlaps(_rows(generate_streaming(tmp_path / "s", docs=1000, shards=2, seed=1)))
    bank = overlaps(_rows(generate_sample(tmp_path / "b", docs=1000, shards=2, seed=1)))
    assert max(ours) < 0.02
    assert sum(bank) / len(bank) > 1000 * sum(ours) / len(ours)  # 0.23 against 2.4e-5


def test_generate_streaming_from_the_command_line(tmp_path, capsys):
    argv = ["generate", "--streaming", "--docs", "40", "--shards", "2"]
    assert main([*argv, "--output", str(tmp_path / "s")]) == 0
    rows = _rows(sorted((tmp_path / "s").glob("*.parquet")))
    assert [r["id"] for r in rows] == [f"doc-{i:09d}" for i in [*range(0, 40, 2), *range(1, 40, 2)]]
    assert "wrote 40 documents in 2 shards" in capsys.readouterr().out
    assert (
        main(["generate", "--streaming", "--format", "chat", "--output", str(tmp_path / "c")]) == 2
    )
    assert "--streaming writes pre-training text only" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
