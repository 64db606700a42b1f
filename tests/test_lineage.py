"""Lineage: every row of data/ and rejected/ names its input file and row,
and that row of that file holds the document (its id, and its text where no
stage changed it); quarantined files' rows too; mixture copies share their
original's; off, the columns are not written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import EVERY_DIRECTORY, write_table
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.sample import generate_sample
from dedupe_at_scale.stages import annotated_fields

pytestmark = [pytest.mark.timeout(300)]


@pytest.mark.ray
def test_every_output_row_points_at_its_input_row(ray_cluster, tmp_path):
    inp = tmp_path / "in"
    generate_sample(inp / "part=a", docs=300, shards=2, seed=5)  # a file below a folder
    write_table(inp / "no-text.parquet", {"id": ["q0", "q1", "q2"], "body": ["a", "b", "c"]})
    cfg = config_from_dict({
        "input": {"on_invalid_file": "quarantine"},
        "output": {"rejected_text": True, "rows_per_shard": 100},
        "mixture": {"enabled": True, "weights": {"web": 0.7, "news": 0.3}, "total": 400,
                    "max_repeats": 3},
    })  # fmt: skip
    out = tmp_path / "out"
    run_job(str(inp), str(out), cfg)
    data = pq.read_table(out / "data").to_pylist()
    rejected = pq.read_table(out / "rejected").to_pylist()

    inputs: dict[str, list[dict]] = {}

    def source(row: dict) -> dict:
        rel = row["source_file"]
        if rel not in inputs:
            inputs[rel] = pq.read_table(inp / rel).to_pylist()
        return inputs[rel][row["source_row"]]

    assert {r["source_file"] for r in data} == {
        "part=a/shard-00000.parquet", "part=a/shard-00001.parquet",
    }  # fmt: skip
    for row in data:
        original = source(row)
        assert (original["id"], original["text"]) == (row["id"], row["text"])
    assert any(r["mixture_repeat"] > 0 for r in data)  # copies name their original's row
    for row in rejected:
        original = source(row)
        assert original["id"] == row["id"]
        if row["stage"] != "input":
            assert original["text"] == row["text"]
    quarantined = [r for r in rejected if r["source_file"] == "no-text.parquet"]
    assert [(r["id"], r["source_row"], r["rule"]) for r in quarantined] == [
        ("q0", 0, "missing_text_column"), ("q1", 1, "missing_text_column"),
        ("q2", 2, "missing_text_column"),
    ]  # fmt: skip


def test_off_the_columns_are_not_written():
    on = [f.name for f in annotated_fields(config_from_dict({}))]
    off = [f.name for f in annotated_fields(config_from_dict({"output": {"lineage": False}}))]
    assert on[:2] == ["source_file", "source_row"]
    assert "source_file" not in off and "source_row" not in off


def test_an_input_column_of_the_same_name_is_kept_renamed(tmp_path):
    from dedupe_at_scale.job.plan import plan_job

    write_table(tmp_path / "in" / "a.parquet",
                {"id": ["a"], "text": ["t"], "source_file": ["crawl-7.warc"]})  # fmt: skip
    plan = plan_job(str(tmp_path / "in"), str(tmp_path / "out"), config_from_dict({}))
    plan.lease.release()
    assert plan.input_schema.renamed == {"source_file": "input_source_file"}
    assert pa.types.is_string(plan.input_schema.schema.field("input_source_file").type)


@pytest.mark.ray
def test_trace_follows_a_document_through_every_step(ray_cluster, sample_dir, s3_server, tmp_path):
    from dedupe_at_scale.job.trace import NotInOutput, trace

    out = tmp_path / "out"
    run_job(str(sample_dir), str(out), config_from_dict(EVERY_DIRECTORY))
    data = pq.read_table(out / "data").to_pylist()
    duplicates = pq.read_table(out / "duplicates").to_pylist()
    rejected = pq.read_table(out / "rejected").to_pylist()
    subset_50 = {r["id"] for r in pq.read_table(out / "subsets" / "50").to_pylist()}
    # A kept document in a duplicate cluster, copied by the mixture, in the 50% subset.
    copies: dict[str, list[dict]] = {}
    for row in data:
        copies.setdefault(row["id"], []).append(row)
    in_cluster = {d["id"]: d for d in duplicates}
    doc = next(i for i, rows in copies.items()
               if len(rows) > 1 and i in in_cluster and i in subset_50)  # fmt: skip
    row = copies[doc][0]
    text = trace(str(out), doc)
    members = [d["id"] for d in duplicates if d["cluster_id"] == in_cluster[doc]["cluster_id"]]
    assert f"  source: {sample_dir}/{row['source_file']}, row {row['source_row']}" in text
    assert f"    langid         passed: {row['language']} (" in text
    assert "    dedup          passed" in text and "    mixture        passed" in text
    assert f"(the kept member); others: {', '.join(sorted(set(members) - {doc}))}" in text
    repeats = ", ".join(
        str(r["mixture_repeat"]) for r in sorted(copies[doc], key=lambda r: r["mixture_repeat"])
    )
    assert f"  data/: {len(copies[doc])} row(s) (mixture copies {repeats})" in text
    assert f"  split: {row['split']}" in text
    assert f"  subsets: 50% ({len(copies[doc])} row(s)), 100%" in text
    # A near duplicate: rejected by dedup, later stages not reached.
    gone = next(r for r in rejected if r["rule"] == "near_duplicate")
    text = trace(str(out), gone["id"])
    assert f"    dedup          rejected: near_duplicate: {gone['reason']}" in text
    assert "    mixture        not reached" in text
    assert f"removed; kept member {gone['reason']}" in text
    # The same from the S3 server.
    s3_server.upload_dir(out, "corpus-out", "traced", pattern="*")
    storage = config_from_dict({"storage": s3_server.storage()}).storage
    assert trace("s3://corpus-out/traced", gone["id"], storage) == text
    with pytest.raises(NotInOutput, match="no-such-doc is not in"):
        trace(str(out), "no-such-doc")
