"""`dedupe-at-scale compile` puts every numba kernel a job calls into numba's
cache, with the argument types the job passes: a job run after it (the
default stages and decontamination) compiles nothing (numba writes a cache
file for each kernel it compiles)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages.base import string_buffers


def cache_files(cache: Path) -> dict[str, float]:
    return {str(p.relative_to(cache)): p.stat().st_mtime for p in cache.rglob("*") if p.is_file()}


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.ray
def test_a_job_after_compile_compiles_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    said = cli("compile", env=env)
    assert said.startswith("Compiled the job's kernels into numba's cache"), said
    compiled = cache_files(cache)
    # The stages' kernels and the dedup step's, each in its module's folder.
    for folder in ("quality", "tokens", "kernels", "dedup"):
        assert any(f.startswith(f"{folder}_") and f.endswith(".nbi") for f in compiled), folder
    assert any("ngram_index.match_ngrams" in f for f in compiled)  # decontamination's
    # Text as a file's read gives it (large_string, read-only buffers) and as
    # most inputs have it (string, cast: writable buffers), with a space-less
    # script and an empty text, over two files.
    (sample,) = generate_sample(tmp_path / "in", docs=400, shards=1, seed=3)
    schema = pq.read_schema(sample)
    schema = schema.set(schema.get_field_index("text"), pa.field("text", pa.large_string()))
    # Decontamination on too (off by default), with a document that holds the item.
    sampled = pq.read_table(sample).to_pylist()
    english = max((r["text"] for r in sampled if r["language_planted"] == "en"), key=len)
    question = "Which river flows through the old town past the mill and the stone bridge today?"
    (tmp_path / "quiz.jsonl").write_text(json.dumps({"question": question}) + "\n")
    config = {
        "decontaminate": {
            "enabled": True,
            "sources": [{"name": "quiz", "uri": str(tmp_path / "quiz.jsonl")}],
        }
    }
    (tmp_path / "job.yaml").write_text(json.dumps(config))
    rows = [{"id": "zh", "text": "这是一个没有空格的句子，用来测试字符模式。" * 4, "source": "web"},
            {"id": "quiz", "text": f"{english} {question}", "source": "web"},
            {"id": "empty", "text": "", "source": "web"}]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema), tmp_path / "in" / "more.parquet")
    cli("run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--config", str(tmp_path / "job.yaml"), "--num-cpus", "2", "--quiet", env=env)  # fmt: skip
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["decontaminate"]["documents_hit"] == 1, manifest["decontaminate"]
    after = cache_files(cache)
    compiled_by_the_job = sorted(f for f in after if compiled.get(f) != after[f])
    assert not compiled_by_the_job


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_string_buffers_are_read_only_whatever_made_them(kind, tmp_path):
    """A numba kernel is compiled once per writability of its arguments."""
    pq.write_table(pa.table({"text": pa.array(["ab", None, "c"], kind)}), tmp_path / "t.parquet")
    for array in (pa.array(["ab", None, "c"], kind),
                  pq.read_table(tmp_path / "t.parquet").column("text")):  # fmt: skip
        data, offsets = string_buffers(array)
        assert not data.flags.writeable and not offsets.flags.writeable
        assert bytes(data[offsets[0] : offsets[-1]]) == b"abc"
        assert np.array_equal(offsets - offsets[0], [0, 2, 2, 3])
