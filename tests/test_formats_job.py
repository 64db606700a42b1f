"""Each post-training format end to end on a local Ray, with the job specs in
jobs/: planted format errors, repeated prompts across shards, planted
conflicts, output readable by pyarrow and DuckDB, 1 and 2 workers alike."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import write_table
from dedupe_at_scale.cli import main
from dedupe_at_scale.sample.posttraining import FORMATS, generate_posttraining
from test_job import run_cli, write_config

ROOT = Path(__file__).resolve().parents[1]
INPUT_COLUMNS = {
    "instruction": ["id", "instruction", "output"],
    "chat": ["id", "conversations"],
    "preference": ["id", "prompt", "chosen", "rejected"],
    "reward": ["id", "prompt", "response", "score"],
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("posttraining")
    for fmt in FORMATS:
        generate_posttraining(root / fmt, fmt, docs=1200, shards=4, seed=11)
    return {fmt: root / fmt for fmt in FORMATS}


def run_job(samples, fmt: str, out: Path, overrides: dict | None = None) -> dict:
    spec = yaml.safe_load((ROOT / "jobs" / f"{fmt}.yaml").read_text())
    for section, values in (overrides or {}).items():
        spec.setdefault(section, {}).update(values)
    config = write_config(out.parent / f"{out.name}.yaml", spec)
    args = ["run", "--input", str(samples[fmt]), "--output", str(out), "--config", str(config)]
    assert main([*args, "--quiet"]) == 0
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_end_to_end(ray_cluster, samples, tmp_path, fmt):
    out = tmp_path / "out"
    manifest = run_job(samples, fmt, out)
    source = pq.read_table(samples[fmt])
    data = pq.read_table(out / "data")
    rejected = pq.read_table(out / "rejected")
    reasons = {r["id"]: r for r in rejected.to_pylist()}
    truth = {r["id"]: r for r in source.to_pylist()}
    kept = set(data.column("id").to_pylist())
    assert len(kept) + len(reasons) == source.num_rows == manifest["counts"]["input"]

    # Every planted format error is rejected by the format stage with its rule.
    planted = {i: r["gt_rule"] for i, r in truth.items() if r["gt_rule"]}
    assert {i: (reasons[i]["stage"], reasons[i]["rule"]) for i in planted} == {
        i: ("format", rule) for i, rule in planted.items()
    }
    assert {i for i, r in reasons.items() if r["stage"] == "format"} == set(planted)

    # Repeated prompts (verbatim, re-cased, a sentence added) are found across
    # shards: of each original and its repeat, exactly one is kept.
    repeats = {i: r["gt_repeat_of"] for i, r in truth.items() if r["gt_repeat_of"]}
    assert repeats
    for copy, original in repeats.items():
        assert (copy in kept) != (original in kept), (copy, original)
        removed = copy if original in kept else original
        assert reasons[removed]["stage"] == "dedup"
    # No other row is a duplicate.
    assert {i for i, r in reasons.items() if r["stage"] == "dedup"} <= set(repeats) | set(
        repeats.values()
    )

    # Conflicts: exactly the planted ones, reported and nothing dropped for them.
    if fmt in ("preference", "reward"):
        conflicts = pq.read_table(out / "conflicts").to_pylist()
        groups: dict[str, set[str]] = {}
        for i, r in truth.items():
            if r["gt_conflict"]:
                groups.setdefault(r["gt_conflict"], set()).add(i)
        assert sorted(sorted(c["ids"]) for c in conflicts) == sorted(
            sorted(g) for g in groups.values()
        )
        assert all(c["dropped_ids"] == [] for c in conflicts)
        section = manifest["consistency"]
        assert section["conflicts"] == len(groups) and section["rows_dropped"] == 0
        # Counted from the conflict files in tasks (one per dedup partition).
        assert section["rows_in_conflicts"] == sum(len(g) for g in groups.values())
        assert sum(section["by_kind"].values()) == len(groups)
        assert manifest["counts"]["stages"]["consistency"]["rejected"] == 0
    else:
        assert manifest["consistency"] == {"enabled": False}

    # The output keeps the input's columns and types; readers need no glue.
    for name in INPUT_COLUMNS[fmt]:
        assert data.schema.field(name).type == source.schema.field(name).type
    assert not [n for n in data.column_names if n.startswith("__dds_")]
    assert {"language", "prompt_language"} <= set(data.column_names)
    import duckdb

    files = str(out / "data" / "*.parquet")
    count = duckdb.sql(f"select count(*) from read_parquet('{files}')").fetchall()[0][0]
    assert count == len(kept) == manifest["counts"]["kept"]
    if fmt == "chat":
        first = duckdb.sql(
            f"select conversations[2]['value'] from read_parquet('{files}') order by id limit 1"
        ).fetchall()[0][0]
        by_id = dict(zip(data.column("id").to_pylist(), data.column("conversations").to_pylist()))
        assert first == by_id[min(by_id)][1]["value"]


@pytest.mark.parametrize("action", ["drop_all", "keep_majority"])
def test_conflict_actions(ray_cluster, samples, tmp_path, action):
    out = tmp_path / "out"
    manifest = run_job(samples, "preference", out, {"consistency": {"action": action}})
    source = pq.read_table(samples["preference"]).to_pylist()
    in_conflict = {r["id"] for r in source if r["gt_conflict"]}
    rejected = {r["id"]: r for r in pq.read_table(out / "rejected").to_pylist()}
    # Every planted conflict is one row against one: both actions drop both.
    assert {i for i, r in rejected.items() if r["stage"] == "consistency"} == in_conflict
    assert all(rejected[i]["rule"] == "preference_conflict" for i in in_conflict)
    assert manifest["consistency"]["rows_dropped"] == len(in_conflict)
    conflicts = pq.read_table(out / "conflicts").to_pylist()
    assert all(sorted(c["dropped_ids"]) == sorted(c["ids"]) for c in conflicts)


def test_keep_majority_keeps_the_majority_side(ray_cluster, tmp_path):
    prompt = "Which bridge in the old town was rebuilt in stone after the great flood?"
    good = (
        "The stone bridge by the market was rebuilt after the flood of 1841, and it still carries "
        "the main road across the river today."
    )
    bad = (
        "Nobody knows which bridge it was, since the town archive burned down long ago and no "
        "other record of the flood has survived."
    )
    write_table(
        tmp_path / "in" / "a.parquet",
        {"id": ["r1", "r2"], "prompt": [prompt, prompt.upper()], "chosen": [good, bad],
         "rejected": [bad, good]},
    )  # fmt: skip
    write_table(
        tmp_path / "in" / "b.parquet",
        {"id": ["r0", "r3"], "prompt": [prompt + " Thanks!", "Tell me about the harbour of Porto and its ships."],
         "chosen": [good, good], "rejected": [bad, bad]},
    )  # fmt: skip
    spec = yaml.safe_load((ROOT / "jobs" / "preference.yaml").read_text())
    spec["consistency"]["action"] = "keep_majority"
    config = write_config(tmp_path / "job.yaml", spec)
    out = tmp_path / "out"
    args = ["run", "--input", str(tmp_path / "in"), "--output", str(out), "--config", str(config)]
    assert main(args) == 0
    rejected = {
        r["id"]: (r["stage"], r["rule"]) for r in pq.read_table(out / "rejected").to_pylist()
    }
    # r0 and r1 prefer good, r2 prefers bad: r2 goes; r0 survives the cluster (smallest id).
    assert rejected == {
        "r2": ("consistency", "preference_conflict"),
        "r1": ("dedup", "near_duplicate"),
    }
    assert sorted(pq.read_table(out / "data").column("id").to_pylist()) == ["r0", "r3"]
    (conflict,) = pq.read_table(out / "conflicts").to_pylist()
    assert sorted(conflict["ids"]) == ["r0", "r1", "r2"] and conflict["dropped_ids"] == ["r2"]


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["chat", "preference"])
def test_same_output_for_one_and_two_workers(samples, tmp_path, fmt):
    spec = yaml.safe_load((ROOT / "jobs" / f"{fmt}.yaml").read_text())
    spec["input"]["rows_per_task"] = 150
    config = write_config(tmp_path / "job.yaml", spec)
    outputs = []
    for cpus in ("1", "2"):
        out = tmp_path / f"out{cpus}"
        result = run_cli(
            "run", "--input", str(samples[fmt]), "--output", str(out),
            "--config", str(config), "--num-cpus", cpus, "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(out)
    subdirs = ["data", "rejected", "duplicates"] + (["conflicts"] if fmt == "preference" else [])
    for sub in subdirs:
        tables = [pq.read_table(o / sub) for o in outputs]
        key = "cluster_id" if sub == "conflicts" else "id"
        tables = [t.sort_by(key) for t in tables]
        assert tables[0].num_rows > 0
        assert tables[0].equals(tables[1]), sub


def test_a_file_without_the_mapped_field_stops_the_job(ray_cluster, tmp_path, capsys):
    write_table(tmp_path / "in" / "a.parquet", {"id": ["1"], "question": ["q"], "answer": ["a"]})
    config = write_config(
        tmp_path / "job.yaml",
        {"input": {"format": "instruction", "fields": {"prompt": "question"}}},
    )
    out = tmp_path / "out"
    code = main(
        ["run", "--input", str(tmp_path / "in"), "--output", str(out), "--config", str(config)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "no column 'response' for the instruction field 'response'" in err
    assert "columns: id, question, answer" in err
    assert not (out / "manifest.json").exists()
