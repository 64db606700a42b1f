"""data/, rejected/ and duplicates/ on the built-in sample stay what they were
when the digests were recorded (before the stage and step contracts of issue
10): same shard names, row counts, schemas and rows in order.

Re-record only for an intended change of output, and say so in the commit:
    DDS_RECORD_DIGESTS=1 .venv/bin/python -m pytest tests/test_output_unchanged.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

DIGESTS = Path(__file__).parent / "data" / "output_digests.json"
CASES = {
    "default": {},
    "mixture_upsampled": {
        "mixture": {
            "enabled": True,
            "group_column": "source",
            "weights": {"web": 0.4, "news": 0.3, "forum": 0.2, "encyclopedia": 0.1},
            "unit": "words",
            "total": 150000,
            "max_repeats": 3,
        },
        "output": {"rows_per_shard": 300},
    },
    "languages_small_shards_text": {
        "langid": {"languages": ["en", "de", "fr"]},
        "quality": {"c4": {"clean_text": True}},
        "output": {"rows_per_shard": 250, "rejected_text": True},
    },
    # The steps' views of data/ (recorded 2026-12-03, before they were written
    # in the pass that writes data/ instead of by reading data/ again).
    "views": {
        "output": {
            "rows_per_shard": 300,
            "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
            "subsets": [0.25, 0.5, 1.0],
        },
    },
}


# Shard boundaries that were not reproducible when recorded: Ray's sort (the
# mixture's output order) samples its range boundaries at random. And rejected/,
# written since issue 10 in the same pass as data/, one shard per staged file
# (split at output.rows_per_shard): same rows in the same order, other shards.
LAYOUT_FREE = {("mixture_upsampled", "data")} | {(case, "rejected") for case in CASES}


# Columns added since the digests were recorded, each tested where it is made:
# n_tokens (issue 16, tests/test_tokens.py); source_file and source_row (issue
# 26, tests/test_lineage.py); similarity in duplicates/ (issue 26, tests/test_audit.py).
ADDED_SINCE = ["n_tokens", "source_file", "source_row", "similarity"]


def table_digest(table: pa.Table) -> str:
    """Schema (names and types) and rows, in order; not file metadata; without
    the columns added since recording."""
    table = table.drop_columns([c for c in ADDED_SINCE if c in table.column_names])
    # Rebuilt from values: the bytes under a null slot are whatever the Parquet
    # reader left there (CI once saw a float column differ only in those).
    columns = [pa.array(c.to_pylist(), type=c.type) for c in table.columns]
    table = pa.table(columns, schema=table.schema.remove_metadata())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def output_digest(out: Path) -> dict[str, dict]:
    """Per directory (and per view: splits/<name>, subsets/<pct>): its shards
    (name, rows) and the digest of all its rows in shard order."""
    result = {}
    views = [f"{p.parent.name}/{p.name}" for p in sorted(out.glob("s*s/*")) if p.is_dir()]
    for name in ("data", "rejected", "duplicates", *views):
        paths = sorted((out / name).rglob("*.parquet")) if (out / name).exists() else []
        tables = [pq.read_table(p) for p in paths]
        result[name] = {
            "shards": [[str(p.relative_to(out / name)), t.num_rows] for p, t in zip(paths, tables)],
            "rows": table_digest(pa.concat_tables(tables)) if tables else None,
        }
    return result


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_matches_recorded_digests(ray_cluster, sample_dir, tmp_path, case):
    out = tmp_path / "out"
    run_job(str(sample_dir), str(out), config_from_dict(CASES[case]))
    got = output_digest(out)
    recorded = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    if os.environ.get("DDS_RECORD_DIGESTS") == "1":
        recorded[case] = got
        DIGESTS.parent.mkdir(exist_ok=True)
        DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    assert case in recorded, f"no digest recorded for {case}"
    assert got.keys() == recorded[case].keys()
    for name in recorded[case]:
        want = recorded[case][name]
        assert got[name]["rows"] == want["rows"], f"{case}: the rows of {name}/ changed"
        if (case, name) not in LAYOUT_FREE:
            assert got[name]["shards"] == want["shards"], f"{case}: {name}/ is sharded otherwise"
