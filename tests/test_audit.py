"""The dedup's evidence: each duplicate's MinHash similarity to its kept
member in duplicates/, and `audit`, which checks a sample of removed near
duplicates against their kept members with exact Jaccard similarity, on
planted pairs: close copies (above the threshold) and far ones that a
permissive LSH without verification removes anyway (below it)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_table
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.job.id_index import shard_finder
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.steps.dedup.audit import NEAR, audit, sample_near, wilson

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def edited(words: list[str], share: float, rng: random.Random, vocabulary: list[str]) -> str:
    out = list(words)
    for i in rng.sample(range(len(out)), int(share * len(out))):
        out[i] = rng.choice(vocabulary)
    return " ".join(out)


def test_audit_finds_the_removed_pairs_below_the_threshold(ray_cluster, tmp_path):
    rng = random.Random(5)
    vocabulary = [f"w{i}" for i in range(5000)]
    ids, texts = [], []
    for k in range(40):
        words = [rng.choice(vocabulary) for _ in range(300)]
        ids.append(f"base-{k:02d}")
        texts.append(" ".join(words))
        if k < 15:  # a close copy: about one word in 100 changed
            ids.append(f"close-{k:02d}")
            texts.append(edited(words, 0.01, rng, vocabulary))
        elif k < 25:  # a far copy: a third of the words changed
            ids.append(f"far-{k:02d}")
            texts.append(edited(words, 0.33, rng, vocabulary))
    write_table(tmp_path / "in" / "a.parquet", {"id": ids, "text": texts})
    cfg = config_from_dict({
        "langid": {"enabled": False}, "quality": {"enabled": False},
        "tokens": {"enabled": False},
        # Candidates down to low similarity, and no verification: far copies go too.
        "dedup": {"bands": 64, "rows": 2, "verify": False, "keep": ["id"]},
    })  # fmt: skip
    out = tmp_path / "out"
    run_job(str(tmp_path / "in"), str(out), cfg)

    text_of = dict(zip(ids, texts))
    duplicates = pq.read_table(out / "duplicates").to_pylist()
    removed = {d["id"]: d for d in duplicates if not d["kept"]}
    assert any(i.startswith("far") for i in removed) and any(i.startswith("close") for i in removed)
    assert all(d["similarity"] == 1.0 for d in duplicates if d["kept"])
    errors = [abs(d["similarity"] - jaccard(text_of[i], text_of[d["cluster_id"]]))
              for i, d in removed.items()]  # fmt: skip
    assert sum(errors) / len(errors) < 0.06  # 128 slots: about 0.04 per pair

    # The report's histogram of those similarities: every cluster member once.
    profile = json.loads((out / "report.json").read_text())
    counts = profile["histograms"]["dedup_similarity"]
    assert sum(counts["rejected"]) == len(removed)
    assert sum(counts["kept"]) == len(duplicates) - len(removed)

    report = audit(str(out), sample=1000)
    # The CLI's way: the sampled ids looked up in index/ first.
    assert audit(str(out), sample=1000, finder=shard_finder) == report
    exact = {i: jaccard(text_of[i], text_of[d["cluster_id"]]) for i, d in removed.items()}
    below = sorted((i for i in exact if exact[i] < 0.8), key=lambda i: exact[i])
    n, above = len(exact), len(exact) - len(below)
    low, high = wilson(above, n)
    assert f"{n} of {n} removed near duplicates" in report
    assert (f"exact Jaccard >= 0.8 (dedup.threshold): {above} of {n} = {above / n:.1%} "
            f"(95% interval {low:.1%} to {high:.1%})") in report  # fmt: skip
    for i in below[:10]:
        assert f"  below: {i} vs {removed[i]['cluster_id']}: exact {exact[i]:.3f}" in report
    assert below and all(i.startswith("far") for i in below)


def test_the_interval_is_wilson_s():
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(95, 100)
    assert (round(low, 4), round(high, 4)) == (0.8882, 0.9785)
    assert wilson(10, 10)[1] == pytest.approx(1.0)


def test_the_sample_is_random_sample_over_every_removed_row(tmp_path):
    """sample_near, which reads rejected/ shard by shard, draws what
    random.sample draws from all its near-duplicate rows in one list (the
    reference): empty shards, shards without one, samples of every size."""
    rng = random.Random(3)
    schema = pa.schema([("id", pa.string()), ("rule", pa.string()), ("reason", pa.string())])
    paths, rows = [], []
    for shard, n in enumerate([0, 7, 1, 0, 30, 2, 15, 4]):
        rules = [NEAR, "exact_duplicate", "c4_min_sentences"] if shard != 7 else ["url_filter"]
        part = [{"id": f"{shard}-{i}", "rule": rng.choice(rules), "reason": f"kept-{shard}-{i}"}
                for i in range(n)]  # fmt: skip
        path = tmp_path / f"part-{shard:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=schema), path)
        paths.append(str(path))
        rows += part
    near = [r for r in rows if r["rule"] == NEAR]
    assert 10 < len(near) < len(rows)
    location = resolve(str(tmp_path))
    for sample, seed in [(1, 0), (5, 1), (5, 2), (len(near), 3), (len(near) + 10, 4), (0, 5)]:
        chosen, total = sample_near(location, paths, sample, seed)
        assert total == len(near)
        assert chosen == random.Random(seed).sample(near, min(sample, len(near)))
    assert sample_near(location, [], 5, 0) == ([], 0)
