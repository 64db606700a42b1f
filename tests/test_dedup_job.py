"""Global dedup on a real local Ray: distributed components, chains, and the
same result for any number of input blocks."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from conftest import assert_same_output, output_tables
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.steps.dedup.components import (
    components_local,
    connected_components,
    large_star,
    small_star,
)
from dedupe_at_scale.steps.dedup.lsh import unique_pairs
from dedupe_at_scale.steps.exchange import Exchange

pytestmark = [pytest.mark.timeout(300)]  # Ray tests are marked by conftest (ray_cluster)

DEDUP_ONLY = {"langid": {"enabled": False}, "quality": {"enabled": False}}


def _rounds_in_one_process(hi: np.ndarray, lo: np.ndarray) -> int:
    """The reference for the distributed rounds: the star steps on the whole
    edge set at once (each works node by node, so partitions change
    nothing), until the edges stop changing."""
    rounds, edges = 0, None
    while True:
        rounds += 1
        hi, lo = small_star(*large_star(np.r_[hi, lo], np.r_[lo, hi]))
        if edges is not None and np.array_equal(hi, edges[0]) and np.array_equal(lo, edges[1]):
            return rounds
        edges = hi, lo


def _adversarial_graphs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    path = rng.permutation(300) * 1_000_003 + (1 << 40)  # a chain in random uid order
    big = np.array([2**62 + 7, 2**62 + 3, 5, 2**62 + 5])
    hub = np.arange(1, 200)
    pairs = rng.permutation(400).reshape(-1, 2)
    return {
        "random": (rng.integers(0, 400, 600) * 977 + (1 << 32), rng.integers(0, 400, 600) * 977),
        "no edges": (np.zeros(0, np.int64), np.zeros(0, np.int64)),
        "one edge": (np.array([9]), np.array([4])),
        "shuffled path": (path[1:], path[:-1]),
        "uids near 2^62": (big[1:], big[:-1]),
        "star around its largest": (np.full(len(hub), 10_000), hub),
        "many pairs": (pairs[:, 0], pairs[:, 1]),
    }


@pytest.mark.parametrize(
    ("partitions", "mailboxes"),
    [(1, 0), (3, 0), (7, 0), (1, 2), (3, 2)],  # seven through mailboxes took 19 s in CI
    ids=["1-objects", "3-objects", "7-objects", "1-mailboxes", "3-mailboxes"],
)
def test_components_on_adversarial_graphs_match_the_references(ray_cluster, partitions, mailboxes):
    """Labels as union-find gives them, in as many rounds as the star steps
    take in one process (the rounds' tasks change how the steps are cut into
    tasks, never what they compute)."""
    for name, (a, b) in _adversarial_graphs().items():
        hi, lo = unique_pairs(a, b)
        senders = np.array_split(np.arange(len(hi)), 3)
        refs = [ray.put(pa.table({"hi": hi[s], "lo": lo[s]})) for s in senders]
        exchange = Exchange(mailboxes)
        try:
            label_refs, rounds = connected_components(exchange, refs, partitions)
            labels = pa.concat_tables(ray.get(label_refs)).to_pylist()
        finally:
            exchange.close()
        # A centre is listed by each partition holding one of its edges.
        assert {(r["node"], r["label"]) for r in labels} == set(components_local(hi, lo).items()), (
            name
        )
        assert rounds == _rounds_in_one_process(hi, lo), name


def shingle_jaccard(a: str, b: str) -> float:
    def grams(t):
        w = t.split()
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def mutate(rng: random.Random, text: str, positions: list[int]) -> str:
    words = text.split()
    for i in positions:
        words[i] = f"changed{rng.randrange(10**6)}"
    return " ".join(words)


def test_chain_of_near_duplicates_becomes_one_cluster(ray_cluster, tmp_path):
    rng = random.Random(11)
    base = " ".join(f"word{rng.randrange(20000)}" for _ in range(600))
    chain = [base]
    for step in range(3):
        # Each link changes other positions: neighbours stay similar, ends drift apart.
        chain.append(mutate(rng, chain[-1], [step * 150 + 10 * k for k in range(1, 7)]))
    unrelated = " ".join(f"other{rng.randrange(20000)}" for _ in range(600))
    assert all(shingle_jaccard(x, y) >= 0.85 for x, y in zip(chain, chain[1:]))
    assert shingle_jaccard(chain[0], chain[-1]) < 0.75
    ids = ["c-a", "c-b", "c-c", "c-d", "u"]
    # Far apart: the first and last links live in different files.
    pq.write_table(pa.table({"id": ids[:2], "text": chain[:2]}), tmp_path / "f0.parquet")
    pq.write_table(
        pa.table({"id": ids[2:], "text": [*chain[2:], unrelated]}), tmp_path / "f1.parquet"
    )
    result = run_job(
        str(tmp_path / "f*.parquet"), str(tmp_path / "out"), config_from_dict(DEDUP_ONLY)
    )
    kept = pq.read_table(tmp_path / "out" / "data").column("id").to_pylist()
    assert kept == ["c-a", "u"]
    rejected = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "rejected").to_pylist()}
    assert {k: (v["stage"], v["rule"], v["reason"]) for k, v in rejected.items()} == {
        "c-b": ("dedup", "near_duplicate", "c-a"),
        "c-c": ("dedup", "near_duplicate", "c-a"),
        "c-d": ("dedup", "near_duplicate", "c-a"),
    }
    assert result.manifest["dedup"]["clusters"] == 1


def test_same_output_for_one_two_and_eight_input_blocks(ray_cluster, sample_dir, tmp_path):
    """The same rows in the same order; not the same shards: rejected/ is cut
    per staged file, and the read blocks make the staged files."""
    single = tmp_path / "single.parquet"
    pq.write_table(pq.read_table(sample_dir), single, row_group_size=250)
    outputs = []
    for rows_per_task in (2000, 1000, 250):  # 1, 2 and 8 read blocks
        cfg = config_from_dict({**DEDUP_ONLY, "input": {"rows_per_task": rows_per_task}})
        out = tmp_path / f"out{rows_per_task}"
        result = run_job(str(single), str(out), cfg)
        tables = {name: pq.read_table(out / name) for name in ("data", "rejected", "duplicates")}
        outputs.append((tables, result.manifest["counts"], result.manifest["dedup"]["clusters"]))
    first = outputs[0]
    assert first[1]["stages"]["dedup"]["rejected"] > 150
    # Without language ID, Chinese is still shingled by characters (few spaces).
    planted = pq.read_table(single, columns=["id", "sample_kind", "language_planted"]).to_pylist()
    removed = set(first[0]["rejected"].column("id").to_pylist())
    zh_near = [
        r["id"] for r in planted if r["sample_kind"] == "near_dup" and r["language_planted"] == "zh"
    ]
    assert zh_near and sum(doc in removed for doc in zh_near) >= 0.9 * len(zh_near)
    for other in outputs[1:]:
        assert other[1] == first[1] and other[2] == first[2]
        for name in ("data", "rejected", "duplicates"):
            assert other[0][name].equals(first[0][name]), name


def test_same_output_however_staged_files_are_grouped(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    """Dedup's tasks read groups of consecutive staged files (so that the
    objects between its steps do not grow with the square of the files):
    one group of all eight files and a group per file decide alike."""
    from dedupe_at_scale.steps import base

    single = tmp_path / "single.parquet"
    pq.write_table(pq.read_table(sample_dir), single, row_group_size=250)
    cfg = config_from_dict({**DEDUP_ONLY, "input": {"rows_per_task": 250}})
    outputs = []
    for per_partition, groups in ((1, 1), (100, 8)):
        monkeypatch.setattr(base, "GROUPS_PER_PARTITION", per_partition)
        out = tmp_path / f"out{groups}"
        result = run_job(str(single), str(out), cfg)
        assert result.manifest["dedup"]["partitions"] == 1
        assert result.manifest["dedup"]["file_groups"] == groups
        outputs.append(output_tables(str(out)))
    duplicates = [t for path, t in outputs[0].items() if path.startswith("duplicates/")]
    assert sum(t.num_rows for t in duplicates) > 150
    assert_same_output(outputs[0], outputs[1])


def test_dedup_submits_the_tasks_the_cost_model_counts(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    """The driver's tasks in dedup, counted where Ray submits them: 5 per
    group, 2 per partition, and 1 + 2 per graph round per graph partition (16
    here, a tenth of the partitions past 160), the formula that
    benchmarks/cost_model.py (Sizing.dedup_tasks) extrapolates to 1B documents."""
    import collections

    import ray.remote_function

    from dedupe_at_scale.steps import dedup

    submitted: collections.Counter = collections.Counter()
    counting = [False]
    remote = ray.remote_function.RemoteFunction._remote

    def counted(self, *args, **kwargs):
        submitted[self._function_name.rsplit(".", 1)[-1]] += counting[0]
        return remote(self, *args, **kwargs)

    def run_dedup(*args, **kwargs):
        counting[0] = True
        try:
            return run(*args, **kwargs)
        finally:
            counting[0] = False

    run = dedup.run_dedup
    monkeypatch.setattr(ray.remote_function.RemoteFunction, "_remote", counted)
    monkeypatch.setattr(dedup, "run_dedup", run_dedup)
    cfg = config_from_dict({**DEDUP_ONLY, "input": {"rows_per_task": 250},
                            "dedup": {"partitions": 20}})  # fmt: skip
    stats = run_job(str(sample_dir), str(tmp_path / "out"), cfg).manifest["dedup"]
    groups, partitions, rounds = stats["file_groups"], stats["partitions"], stats["graph_rounds"]
    graph = stats["graph_partitions"]
    assert partitions == 20 and graph == 16 and groups > 1 and rounds > 1, stats
    assert sum(submitted.values()) == 5 * groups + 2 * partitions + (1 + 2 * rounds) * graph, (
        submitted
    )
    # Buckets and verify send their edges into the graph themselves.
    assert "_route_both_ways" not in submitted
    assert submitted["_large_star"] == submitted["_small_star"] == rounds * graph
    assert submitted["_route_labels"] == graph and submitted["_buckets"] == partitions


def test_same_output_with_the_graph_on_fewer_partitions(ray_cluster, sample_dir, tmp_path):
    """The graph's rounds on fewer partitions than the other sub-steps (past
    GRAPH_SPREAD) decide as one partition for everything does."""
    outputs = []
    for partitions, graph in ((1, 1), (20, 16)):
        cfg = config_from_dict({**DEDUP_ONLY, "input": {"rows_per_task": 250},
                                "dedup": {"partitions": partitions}})  # fmt: skip
        out = tmp_path / f"out{partitions}"
        stats = run_job(str(sample_dir), str(out), cfg).manifest["dedup"]
        assert (stats["partitions"], stats["graph_partitions"]) == (partitions, graph)
        outputs.append(output_tables(str(out)))
    duplicates = [t for path, t in outputs[0].items() if path.startswith("duplicates/")]
    assert sum(t.num_rows for t in duplicates) > 100
    assert_same_output(outputs[0], outputs[1])


def test_exact_only_and_keep_rule(ray_cluster, tmp_path):
    texts = ["the same words in the same order here"] * 3 + ["something else entirely different"]
    table = pa.table(
        {"id": ["d1", "d2", "d3", "d4"], "text": texts, "quality_score": [0.1, 0.9, 0.5, 0.3]}
    )
    pq.write_table(table, tmp_path / "in.parquet")
    cfg = config_from_dict({**DEDUP_ONLY, "dedup": {"near": False}})
    result = run_job(str(tmp_path / "in.parquet"), str(tmp_path / "out"), cfg)
    kept = pq.read_table(tmp_path / "out" / "data").column("id").to_pylist()
    assert kept == ["d2", "d4"]  # highest quality_score wins the exact cluster
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert {(r["id"], r["rule"], r["reason"]) for r in rejected} == {
        ("d1", "exact_duplicate", "d2"),
        ("d3", "exact_duplicate", "d2"),
    }
    assert result.manifest["dedup"]["keep_effective"] == ["-quality_score", "id"]


def test_custom_id_and_text_columns(ray_cluster, tmp_path):
    texts = ["one two three four five six seven"] * 2 + ["eight nine ten eleven twelve"]
    table = pa.table({"doc_id": [30, 9, 20], "body": texts})  # 9 < 30 as numbers, not as text
    pq.write_table(table, tmp_path / "in.parquet")
    cfg = config_from_dict(
        {**DEDUP_ONLY, "input": {"id_column": "doc_id", "text_column": "body"},
         "dedup": {"keep": ["doc_id"]}}
    )  # fmt: skip
    run_job(str(tmp_path / "in.parquet"), str(tmp_path / "out"), cfg)
    assert pq.read_table(tmp_path / "out" / "data").column("doc_id").to_pylist() == [9, 20]
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert [(r["id"], r["rule"], r["reason"]) for r in rejected] == [("30", "exact_duplicate", "9")]


def test_groups_spread_few_partitions_and_stay_near_many():
    """Four groups a partition where partitions are few (tasks to spread),
    one more a partition past SPREAD_PARTITIONS (a hop's pieces are groups
    x groups)."""
    from dedupe_at_scale.steps.base import SPREAD_PARTITIONS, group_count

    assert [group_count(p) for p in (1, 3)] == [4, 12]
    assert group_count(SPREAD_PARTITIONS) == 4 * SPREAD_PARTITIONS
    assert group_count(SPREAD_PARTITIONS + 1) == 4 * SPREAD_PARTITIONS + 1
    assert group_count(10_000) == 10_000 + 3 * SPREAD_PARTITIONS


def test_partitions_follow_the_data_volume_not_the_cluster():
    from dedupe_at_scale.steps.base import DOCS_PER_PARTITION, partition_count

    assert partition_count(5_000) == 1  # a small job, whatever the cluster
    assert partition_count(0) == 1
    assert partition_count(DOCS_PER_PARTITION + 1) == 2
    # A large corpus on a small cluster: partitions stay small, not few.
    assert partition_count(10**9) == 10**9 // DOCS_PER_PARTITION
    counts = [partition_count(n) for n in range(0, 3_000_000, 50_000)]
    assert counts == sorted(counts) and max(counts) == 30
