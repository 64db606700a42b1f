"""The boilerplate step against its single-process reference on adversarial
text (case and whitespace variants, blank lines, units repeated inside a
document, documents that are all boilerplate), on one worker and on two
with three partitions; keep_first; and near-duplicate detection running on
the text without boilerplate."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import write_table
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.steps.boilerplate.units import reference

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

BANNERS = [
    "We use cookies to improve your experience. Accept all cookies",
    "Home | About | Contact | Privacy",
    "© 2026 Example Media. All rights reserved.",
    "Subscribe to our newsletter",
    "Share this article",
]


def variant(line: str, rng: random.Random) -> str:
    """The same line as far as normalization goes: case, spacing, tabs."""
    words = line.split(" ")
    if rng.random() < 0.3:
        line = line.upper()
    if rng.random() < 0.3:
        line = "  " + "\t ".join(words) + " \u00a0"
    return line


def corpus(rng: random.Random, n: int) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for d in range(n):
        lines = []
        for _ in range(rng.randint(0, 8)):
            roll = rng.random()
            if roll < 0.35:
                lines.append(variant(rng.choice(BANNERS), rng))
            elif roll < 0.45:
                lines.append(rng.choice(["", " ", "\t"]))
            else:
                words = [f"w{rng.randint(0, 3000)}" for _ in range(rng.randint(3, 25))]
                lines.append(" ".join(words) + ".")
        if rng.random() < 0.1:  # a unit twice in one document counts once
            lines += lines[:1]
        ids.append(f"d{d:04d}")
        texts.append(("\r\n" if rng.random() < 0.05 else "\n").join(lines))
    return ids, texts


SECTION = {"enabled": True, "min_documents": 6, "min_chars": 40}
QUIET = {"langid": {"enabled": False}, "quality": {"enabled": False},
         "tokens": {"enabled": False}, "dedup": {"enabled": False}}  # fmt: skip


def expected(ids, texts, section) -> tuple[dict[str, str], set[str]]:
    cleaned, lost = reference(
        texts, "line", section["min_documents"], section.get("keep_first", False)
    )
    rejected = {
        i for i, t, n in zip(ids, cleaned, lost) if n and len(t.strip()) < section["min_chars"]
    }
    return {i: t for i, t in zip(ids, cleaned) if i not in rejected}, rejected


def outcome(out) -> tuple[dict[str, str], set[str]]:
    data = pq.read_table(out / "data", columns=["id", "text"]).to_pylist()
    rejected = pq.read_table(out / "rejected").to_pylist()
    return ({r["id"]: r["text"] for r in data},
            {r["id"] for r in rejected if r["rule"] == "boilerplate_too_short"})  # fmt: skip


@pytest.mark.parametrize("keep_first", [False, True])
def test_the_step_equals_its_reference_on_one_worker_and_on_two(ray_cluster, tmp_path, keep_first):
    ids, texts = corpus(random.Random(2 + keep_first), 400)
    write_table(tmp_path / "in" / "a.parquet", {"id": ids[:150], "text": texts[:150]})
    write_table(tmp_path / "in" / "b.parquet", {"id": ids[150:], "text": texts[150:]})
    section = {**SECTION, "keep_first": keep_first}
    want = expected(ids, texts, section)
    assert want[1] and any(want[0][i] != t for i, t in zip(ids, texts) if i in want[0])
    # Two workers, three partitions, several read units, in this process.
    cfg = {**QUIET, "boilerplate": section, "input": {"rows_per_task": 70}}
    run_job(str(tmp_path / "in"), str(tmp_path / "two"), config_from_dict(
        {**cfg, "dedup": {"enabled": False, "partitions": 3}}))  # fmt: skip
    assert outcome(tmp_path / "two") == want
    if keep_first:
        return  # one worker once is enough: keep_first is decided in the same tasks
    # One worker, the command line.
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", "run", "--input", str(tmp_path / "in"),
         "--output", str(tmp_path / "one"), "--config", str(tmp_path / "job.yaml"),
         "--num-cpus", "1", "--quiet"],
        capture_output=True, text=True, timeout=240, env={**os.environ},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert outcome(tmp_path / "one") == want


def test_dedup_sees_the_text_without_boilerplate(ray_cluster, tmp_path):
    rng = random.Random(9)
    body = " ".join(f"w{rng.randint(0, 9000)}" for _ in range(120)) + "."
    filler = [" ".join(f"f{k}x{j}" for j in range(40)) for k in range(2)]
    ids, texts = [], []
    for d in range(12):  # six documents with each footer: both footers are boilerplate
        ids.append(f"n{d:02d}")
        texts.append(f"unique opening {d} " + " ".join(f"u{d}x{j}" for j in range(60)))
        texts[-1] += "\n" + filler[d % 2]
    # Two copies of one body under different footers: below the threshold as
    # written, the same text once the footers are cut.
    ids += ["copy-a", "copy-b"]
    texts += [f"{body}\n{filler[0]}", f"{body}\n{filler[1]}"]
    write_table(tmp_path / "in" / "a.parquet", {"id": ids, "text": texts})
    quiet = {k: v for k, v in QUIET.items() if k != "dedup"}
    for on in (False, True):
        out = tmp_path / f"out-{on}"
        cfg = {**quiet, "boilerplate": {**SECTION, "enabled": on}}
        run_job(str(tmp_path / "in"), str(out), config_from_dict(cfg))
        removed = {r["id"]: r["rule"] for r in pq.read_table(out / "rejected").to_pylist()}
        assert removed.get("copy-b") == ("exact_duplicate" if on else None)
    assert pq.read_table(out / "data").num_rows == 13
