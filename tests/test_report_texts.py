"""The report's duplicate pairs: the clusters chosen do not depend on how the
rows fall into blocks (workers, read units), and shared passages are marked."""

from __future__ import annotations

import random

import pyarrow as pa

from dedupe_at_scale import columns as col
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.report_texts import marked
from dedupe_at_scale.steps.dedup.report_pairs import PAIRS, cluster_rows, duplicate_pairs


def rows(n_clusters: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for c in range(n_clusters):
        members = [f"doc-{c}-{m}" for m in range(rng.randint(2, 4))]
        for m, id_ in enumerate(members):
            out.append({
                "id": id_, "text": f"text of {id_} " * 3, col.CLUSTER: members[0],
                col.STAGE: None if m == 0 else "dedup",
                col.RULE: None if m == 0 else rng.choice(["exact_duplicate", "near_duplicate"]),
                col.SIMILARITY: 1.0 if m == 0 else rng.random(),
            })  # fmt: skip
    out += [{"id": f"lone-{i}", "text": "alone", col.CLUSTER: None, col.STAGE: None,
             col.RULE: None, col.SIMILARITY: None} for i in range(20)]  # fmt: skip
    rng.shuffle(out)
    return out


def pairs_from_blocks(all_rows: list[dict], blocks: int, seed: int) -> list[dict]:
    cfg = config_from_dict({"output": {"rejected_text": True}})
    rng = random.Random(seed)
    parts: list[list[dict]] = [[] for _ in range(blocks)]
    for row in all_rows:
        parts[rng.randrange(blocks)].append(row)
    found = []
    for part in parts:
        if part:
            found += cluster_rows(pa.Table.from_pylist(part), cfg)
    return duplicate_pairs(found)


def test_the_pairs_do_not_depend_on_the_blocks():
    all_rows = rows(200)
    one = pairs_from_blocks(all_rows, 1, 0)
    assert len(one) == PAIRS
    for blocks, seed in [(2, 1), (7, 2), (50, 3), (400, 4)]:
        assert pairs_from_blocks(all_rows, blocks, seed) == one
    for pair in one:
        assert (
            pair["kept"]["id"].endswith("-0")
            and pair["removed"]["id"].rsplit("-", 1)[0] == (pair["kept"]["id"].rsplit("-", 1)[0])
        )


def test_shared_passages_are_marked_by_words_or_by_characters():
    assert marked("the cat sat on the mat <b>", "a cat sat on the mat!") == (
        "the <mark>cat sat on the </mark>mat &lt;b&gt;"
    )
    assert marked("one two", "one two") == "one two"  # under three words: not marked
    assert marked("艺术学院的一群学生写了一份关于春季洪水", "一群学生写了一份关于春季的") == (
        "艺术学院的<mark>一群学生写了一份关于春季</mark>洪水"
    )
