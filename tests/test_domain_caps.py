"""Per-domain caps of the mixture: the cut equals a plain per-domain loop
(documents in draw order while the next still fits), in the kernel and in
the job on local Ray across several hash partitions."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import ConfigError, config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.steps.domain_caps import capped_rows, cut_points, cut_table
from dedupe_at_scale.steps.mixture import draws


def plain_cut(rows: list[tuple[str, float, float]], cap: float) -> set[tuple[str, float]]:
    """The (domain, draw) of every row left out: per domain, rows in draw
    order while the running total stays within the cap, none after."""
    out = set()
    for domain in {d for d, _, _ in rows}:
        total, full = 0.0, False
        for _, u, amount in sorted((r for r in rows if r[0] == domain), key=lambda r: r[1]):
            total += amount
            full = full or total > cap
            if full:
                out.add((domain, u))
    return out


def test_the_cut_is_the_plain_loop_s():
    rng = random.Random(3)
    for _ in range(50):
        n = rng.randint(0, 400)
        domains = [f"d{int(rng.paretovariate(1.2)) % 30}" for _ in range(n)]
        rows = [(d, rng.random(), float(rng.choice([0, 1, 2, 5, 40]))) for d in domains]
        cap = rng.choice([1.0, 10.0, 55.5, 200.0])
        cuts = cut_points(
            np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows]), cap,
        )  # fmt: skip
        left_out = {(d, u) for d, u, _ in rows if d in cuts and u >= cuts[d][0]}
        assert left_out == plain_cut(rows, cap)
        # What the write pass's tasks mark, from the joined table of cuts.
        marked = capped_rows(
            pa.array([r[0] for r in rows], pa.string()), np.array([r[1] for r in rows]),
            cut_table(cuts),
        )  # fmt: skip
        assert {(d, u) for (d, u, _), m in zip(rows, marked) if m} == left_out
        for d, (_, total) in cuts.items():
            assert total == pytest.approx(sum(a for dd, _, a in rows if dd == d))


def test_caps_without_weights_need_no_groups_and_must_be_positive():
    config_from_dict({"mixture": {"enabled": True, "max_per_domain": 10}})
    with pytest.raises(ConfigError, match="mixture.max_per_domain"):
        config_from_dict({"mixture": {"enabled": True, "max_per_domain": 0}})
    with pytest.raises(ConfigError, match="mixture.weights"):
        config_from_dict({"mixture": {"enabled": True}})


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_the_job_caps_every_domain_exactly(ray_cluster, tmp_path):
    raw, inp = tmp_path / "raw", tmp_path / "in"
    inp.mkdir()
    rng = random.Random(11)
    for path in generate_sample(raw, docs=1200, shards=3, seed=4):
        table = pq.read_table(path)
        hosts = [f"site{int(rng.paretovariate(0.8)) % 40}.example" for _ in range(table.num_rows)]
        urls = pa.array([f"https://www.{h}/page/{i}" for i, h in enumerate(hosts)])
        table = table.set_column(table.schema.get_field_index("url"), "url", urls)
        pq.write_table(table, inp / path.name)
    cap = 20_000.0
    cfg = config_from_dict({
        "input": {"url_column": "url"},
        "mixture": {"enabled": True, "weights": {"web": 0.5, "news": 0.3, "forum": 0.2},
                    "max_per_domain": cap, "per_domain_unit": "bytes", "seed": 7},
        "dedup": {"partitions": 3},
        "output": {"rejected_text": True},
    })  # fmt: skip
    out = tmp_path / "out"
    result = run_job(str(inp), str(out), cfg)

    data = pq.read_table(out / "data", columns=["id", "text", "domain"])
    rejected = pq.read_table(out / "rejected")
    capped = rejected.filter(pc.equal(rejected["rule"], "mixture_domain_cap"))
    assert capped.num_rows > 0
    # Every document the group plan selected: written, or left out by a cap.
    domain_of = dict(zip(data["id"].to_pylist(), data["domain"].to_pylist()))
    for reason, doc in zip(capped["reason"].to_pylist(), capped["id"].to_pylist()):
        assert reason.startswith("mixture_domain_cap: domain=site")
        domain_of[doc] = reason.removeprefix("mixture_domain_cap: domain=")
    texts = dict(zip(data["id"].to_pylist(), data["text"].to_pylist()))
    texts |= dict(zip(capped["id"].to_pylist(), capped["text"].to_pylist()))
    ids = sorted(domain_of)
    u = draws(pa.array(ids), 7)
    rows = [(domain_of[i], float(x), float(len(texts[i].encode()))) for i, x in zip(ids, u)]
    expected_out = plain_cut(rows, cap)
    got_out = {
        (domain_of[i], float(x)) for i, x in zip(ids, u) if i in set(capped["id"].to_pylist())
    }
    assert got_out == expected_out
    written: dict[str, float] = {}
    for doc, text in zip(data["id"].to_pylist(), data["text"].to_pylist()):
        written[domain_of[doc]] = written.get(domain_of[doc], 0) + len(text.encode())
    assert max(written.values()) <= cap
    caps = result.manifest["mixture"]["domain_caps"]
    assert caps["capped_domains"] == len({d for d, _ in expected_out})
    assert caps["max_per_domain"] == cap and caps["unit"] == "bytes"
