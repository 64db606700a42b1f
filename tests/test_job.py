"""The whole job on a real local Ray (2 CPUs), checked on its output files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import write_table
from dedupe_at_scale.cli import main

pytestmark = [pytest.mark.timeout(300)]

KIND_RULES = {
    "gibberish": {"langid_min_score"},
    "spam": {"gopher_duplicate_lines"},
    "lorem": {"c4_lorem_ipsum"},
    "boilerplate": {"c4_min_sentences"},
    # English-like short texts fail the word count; Chinese ones the sentence count.
    "short": {"gopher_min_words", "c4_min_sentences"},
}


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dedupe_at_scale.cli", *args],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )


def read_output(out: Path) -> tuple[pa.Table, pa.Table, dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    data = pq.read_table(out / "data")  # plain pyarrow, no dedupe_at_scale
    rejected = pq.read_table(out / "rejected")
    return data, rejected, manifest


@pytest.mark.ray
def test_cli_end_to_end_on_local_ray(sample_dir, tmp_path):
    config = write_config(
        tmp_path / "job.yaml",
        {"langid": {"languages": ["en", "de", "fr", "es"]}, "output": {"rows_per_shard": 400}},
    )
    out = tmp_path / "out"
    result = run_cli(
        "run", "--input", str(sample_dir), "--output", str(out),
        "--config", str(config), "--num-cpus", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Top rejection reasons" in result.stdout and str(out) in result.stdout

    data, rejected, manifest = read_output(out)
    source = pq.read_table(sample_dir)
    planted = {
        r["id"]: r
        for r in source.select(["id", "sample_kind", "language_planted", "dup_of"]).to_pylist()
    }

    # Every input document is in exactly one of data/ and rejected/.
    kept_ids = data.column("id").to_pylist()
    rejected_ids = rejected.column("id").to_pylist()
    assert len(kept_ids) + len(rejected_ids) == source.num_rows
    assert set(kept_ids) | set(rejected_ids) == set(planted)
    assert not set(kept_ids) & set(rejected_ids)
    kept_set = set(kept_ids)

    # Manifest counts add up and match the files.
    counts = manifest["counts"]
    assert counts["input"] == source.num_rows == counts["kept"] + counts["rejected"]
    assert counts["kept"] == data.num_rows
    assert sum(s["rows"] for s in manifest["output"]["data"]) == data.num_rows
    assert all(s["rows"] <= 400 for s in manifest["output"]["data"])
    stages = counts["stages"]
    assert stages["langid"]["in"] == stages["input"]["kept"]
    assert stages["dedup"]["in"] == stages["quality"]["kept"]
    assert stages["dedup"]["kept"] == counts["kept"]
    assert manifest["config"]["langid"]["languages"] == ["en", "de", "fr", "es"]
    assert manifest["versions"]["ray"].startswith("2.60")
    assert len(manifest["input"]["files"]) == 8

    # Languages kept and dropped as configured.
    assert set(data.column("language").to_pylist()) <= {"en", "de", "fr", "es"}
    reasons = {r["id"]: r for r in rejected.to_pylist()}
    kept_set = set(kept_ids)
    for doc_id, row in planted.items():
        if row["sample_kind"] == "clean" and row["language_planted"] in ("it", "pt", "zh"):
            assert reasons[doc_id]["rule"] == "langid_language", doc_id
        if row["sample_kind"] == "clean" and row["language_planted"] in ("en", "de", "fr", "es"):
            assert doc_id in kept_set, (doc_id, reasons.get(doc_id))

    # Planted bad documents are rejected by the rule meant for them.
    for doc_id, row in planted.items():
        expected = KIND_RULES.get(row["sample_kind"])
        if expected and row["language_planted"] in ("en", "de", "fr", "es"):
            assert reasons[doc_id]["rule"] in expected, (row["sample_kind"], reasons[doc_id])

    # Duplicates planted in other shards are found; the original survives.
    near_found = near_total = 0
    for doc_id, row in planted.items():
        if row["sample_kind"] not in ("exact_dup", "near_dup"):
            continue
        original = row["dup_of"]
        if planted[original]["language_planted"] not in ("en", "de", "fr", "es"):
            continue
        assert original in kept_set, original
        if row["sample_kind"] == "exact_dup":
            assert reasons[doc_id]["rule"] == "exact_duplicate"
            assert reasons[doc_id]["reason"] == original
        elif reasons.get(doc_id, {}).get("stage") not in ("langid", "quality"):
            # (An edit can cost a line its full stop; C4 may then drop the copy.)
            near_total += 1
            if doc_id in reasons:
                assert reasons[doc_id]["rule"] in ("near_duplicate", "exact_duplicate")
                assert reasons[doc_id]["reason"] == original
                near_found += 1
    assert near_found >= 0.97 * near_total > 0
    duplicates = pq.read_table(out / "duplicates").to_pylist()
    clusters = {}
    for row in duplicates:
        clusters.setdefault(row["cluster_id"], []).append(row)
    for cluster_id, members in clusters.items():
        assert len(members) > 1
        assert [m["id"] for m in members if m["kept"]] == [cluster_id]
        for m in members:
            if not m["kept"]:
                assert reasons[m["id"]]["stage"] == "dedup"
                assert reasons[m["id"]]["reason"] == cluster_id
    dedup = manifest["dedup"]
    assert dedup["clusters"] == len(clusters)
    # The driver's own CPU for each phase it timed (all but planning and
    # preparing, timed before the job starts, and the total).
    timings = manifest["timings"]
    driver_cpu = timings["driver_cpu_seconds"]
    assert set(driver_cpu) == set(timings["wall_seconds"]) - {"plan", "prepare", "total"}
    assert {"annotate", "ids", "dedup", "write", "account"} <= set(driver_cpu)
    assert all(seconds >= 0 for seconds in driver_cpu.values()) and driver_cpu["annotate"] > 0
    removed = Counter(r["rule"] for r in reasons.values() if r["stage"] == "dedup")
    assert dedup["exact_duplicates_removed"] == removed["exact_duplicate"]
    assert dedup["near_duplicates_removed"] == removed["near_duplicate"]

    # Original columns pass through, with the new ones added.
    for name in ["id", "text", "source", "url", "sample_kind", "language", "language_score"]:
        assert name in data.column_names
    assert "q_gopher_word_count" in data.column_names
    assert not [n for n in data.column_names if n.startswith("__dds_")]
    assert rejected.column_names == [
        "id", "stage", "rule", "value", "reason", "source_file", "source_row",
    ]  # fmt: skip


@pytest.mark.ray
def test_same_output_for_one_and_two_workers(sample_dir, tmp_path):
    config = write_config(
        tmp_path / "job.yaml",
        {"input": {"rows_per_task": 120}, "output": {"rows_per_shard": 300}},
    )
    outputs = []
    for cpus in ("1", "2"):
        out = tmp_path / f"out{cpus}"
        result = run_cli(
            "run", "--input", str(sample_dir), "--output", str(out),
            "--config", str(config), "--num-cpus", cpus, "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(out)
    for sub in ("data", "rejected"):
        files_1 = sorted(p.name for p in (outputs[0] / sub).iterdir())
        files_2 = sorted(p.name for p in (outputs[1] / sub).iterdir())
        assert files_1 == files_2
        for name in files_1:
            assert pq.read_table(outputs[0] / sub / name).equals(
                pq.read_table(outputs[1] / sub / name)
            )


def test_quarantine_and_generated_ids(ray_cluster, tmp_path, capsys):
    write_table(
        tmp_path / "in" / "a.parquet", {"text": ["fine " * 3, None, "x"], "lang": ["en"] * 3}
    )
    config = write_config(
        tmp_path / "job.yaml",
        {"input": {"on_invalid_document": "quarantine"}, "output": {"rejected_text": True}},
    )
    out = tmp_path / "out"
    assert (
        main(
            ["run", "--input", str(tmp_path / "in"), "--output", str(out), "--config", str(config)]
        )
        == 0
    )
    data, rejected, manifest = read_output(out)
    rows = {r["id"]: r for r in rejected.to_pylist()}
    assert set(rows) == {"a.parquet#0", "a.parquet#1", "a.parquet#2"}
    assert rows["a.parquet#1"]["stage"] == "input" and rows["a.parquet#1"]["rule"] == "null_text"
    assert manifest["counts"]["stages"]["input"]["rejected"] == 1
    assert data.num_rows == 0 and manifest["counts"]["kept"] == 0
    assert "text" in rejected.column_names


def test_null_text_fails_the_run_naming_file_and_row_and_writes_no_manifest(
    ray_cluster, tmp_path, capsys
):
    write_table(tmp_path / "in" / "bad.parquet", {"text": ["ok", "ok", None]})
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "in"), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bad.parquet: row 2 has null text in column 'text'" in err
    assert not (out / "manifest.json").exists()


def test_complete_output_is_refused_then_overwritten(ray_cluster, sample_dir, tmp_path, capsys):
    out = tmp_path / "out"
    single = str(sample_dir / "shard-00000.parquet")
    assert main(["run", "--input", single, "--output", str(out), "--quiet"]) == 0
    first = json.loads((out / "manifest.json").read_text())
    assert main(["run", "--input", single, "--output", str(out)]) == 1
    assert "already holds a complete output" in capsys.readouterr().err
    assert main(["run", "--input", single, "--output", str(out), "--overwrite", "--quiet"]) == 0
    second = json.loads((out / "manifest.json").read_text())
    assert first["counts"] == second["counts"]


def test_stage_switches_and_bytes_per_shard(ray_cluster, sample_dir, tmp_path):
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.pipeline import run_job

    cfg = config_from_dict(
        {
            "langid": {"enabled": False},
            "quality": {"enabled": False},
            "dedup": {"enabled": False},
            "output": {"bytes_per_shard": 60_000},
        }
    )
    result = run_job(str(sample_dir / "shard-0000[01].parquet"), str(tmp_path / "out"), cfg)
    counts = result.manifest["counts"]
    assert counts["rejected"] == 0 and counts["kept"] == counts["input"]
    assert counts["stages"]["langid"]["enabled"] is False
    data = pq.read_table(tmp_path / "out" / "data")
    assert data.column("language").null_count == data.num_rows
    # About 96 KB of rows in shards of at most about 60 KB: two.
    shards = result.manifest["output"]["data"]
    assert len(shards) >= 2
    assert max(s["bytes"] for s in shards) < 2 * 60_000
    assert Counter(data.column("id").to_pylist()).most_common(1)[0][1] == 1


def test_the_write_pass_reads_two_staged_files_at_once_on_two_cpus(
    ray_cluster, sample_dir, tmp_path
):
    """The passes after annotation read staged files in one operator and
    write in another. Ray Data's per-operator reservation gave each of them
    one of the 2 CPUs, so the reads ran one at a time while the write waited
    for whole shards (job/ray_settings.py turns it off)."""
    import time

    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.pipeline import run_job

    started = time.time()
    run_job(str(sample_dir), str(tmp_path / "out"), config_from_dict({}))
    ended = time.time()
    # The read operators of the passes over staged files (the annotate pass
    # reads the input in an operator fused with annotate_batch).
    spans = sorted(
        (event["ts"], event["ts"] + event["dur"])
        for event in ray_cluster.timeline()
        if event.get("ph") == "X"
        and event["name"].endswith("_map_task")
        and event.get("cat", "").startswith("task::ReadUnit")
        and "annotate" not in event["cat"]
        and started <= event["ts"] / 1e6 <= ended
    )
    # 8 staged files read by the write pass, and the decision files behind
    # duplicates/ (under a shard's rows: one task)
    assert len(spans) >= 9
    most = max(sum(1 for begin, end in spans if begin <= start < end) for start, _ in spans)
    assert most == 2, f"at most {most} of {len(spans)} staged reads ran at once"


def test_data_shards_do_not_depend_on_how_many_blocks_ray_data_aims_for(
    ray_cluster, sample_dir, tmp_path
):
    """Unless told otherwise, Ray Data splits a read into max(200, 2 x the
    cluster's CPUs) blocks (fewer for little data), and data/'s shards are
    written from whole blocks. The passes over staged files read one block
    per file, so a cluster of 500 CPUs (1,000 blocks) writes the shards of a
    small one (here 1 block: Ray Data's floor, 200, lowered to it)."""
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.job.pipeline import run_job

    # Every row kept: staged files of 250 rows, shards of at most 200.
    off = {"enabled": False}
    cfg = config_from_dict({"langid": off, "quality": off, "dedup": off,
                            "output": {"rows_per_shard": 200}})  # fmt: skip
    context = ray_cluster.data.DataContext.get_current()
    saved = context.read_op_min_num_blocks, context.target_min_block_size
    shards = {}
    for blocks in (1, 1000):
        # A block may be 1 byte: the sample's size caps nothing, as a corpus's would not.
        context.read_op_min_num_blocks, context.target_min_block_size = blocks, 1
        out = tmp_path / str(blocks)
        try:
            run_job(str(sample_dir), str(out), cfg)
        finally:
            context.read_op_min_num_blocks, context.target_min_block_size = saved
        shards[blocks] = [
            (p.name, pq.read_metadata(p).num_rows) for p in sorted((out / "data").iterdir())
        ]
    assert len(shards[1]) > 1
    assert shards[1000] == shards[1]


@pytest.mark.parametrize(
    "make_input, message",
    [
        (
            lambda d: write_table(d / "x.parquet", {"body": ["t"]}),
            "x.parquet: missing text column 'text'",
        ),
        (
            lambda d: write_table(d / "x.parquet", {"text": [1.5]}),
            "x.parquet: text column 'text' has type double",
        ),
        (lambda d: (d / "x.parquet").write_bytes(b""), "x.parquet: file is empty"),
        (
            lambda d: (d / "x.parquet").write_text("PAR1 nope"),
            "x.parquet: not a readable Parquet file",
        ),
    ],
)
def test_bad_input_is_reported_before_ray_starts(tmp_path, capsys, make_input, message):
    (tmp_path / "in").mkdir()
    make_input(tmp_path / "in")
    assert main(["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_config_key_is_named(tmp_path, capsys):
    config = write_config(tmp_path / "job.yaml", {"quality": {"fineweb": {"max_short_lines": 0.5}}})
    code = main(
        ["run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--config", str(config)]
    )
    assert code == 2
    assert "unknown key 'quality.fineweb.max_short_lines'" in capsys.readouterr().err


def test_the_same_bytes_however_many_units_or_staged_files_a_task_reads(
    ray_cluster, sample_dir, tmp_path, monkeypatch
):
    """Annotate reads several consecutive units a task, and the write pass
    several staged files (Ray Data's driver spends about 10 ms a read
    task): a task per unit and file and all eight in one task write the same
    bytes to every output, the steps' views and duplicates/ included."""
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.io import datasource
    from dedupe_at_scale.job.pipeline import run_job

    cfg = config_from_dict({
        "input": {"rows_per_task": 250},
        "output": {"rows_per_shard": 300, "splits": {"train": 0.9, "test": 0.1},
                   "subsets": [0.5, 1.0]},
    })  # fmt: skip
    digests = {}
    for most, per_task in ((1, 1), (16, 8)):  # 8 read tasks, then 1
        monkeypatch.setattr(datasource, "MAX_FILES_PER_TASK", most)
        monkeypatch.setattr(datasource, "MIN_READ_TASKS", 1)
        assert datasource.files_per_task(8) == per_task
        out = tmp_path / str(most)
        run_job(str(sample_dir), str(out), cfg)
        files = sorted(p for p in out.rglob("*.parquet"))
        digests[most] = {p.relative_to(out).as_posix(): p.read_bytes() for p in files}
    assert {"data", "rejected", "duplicates", "splits", "subsets"} <= {
        name.split("/")[0] for name in digests[1]
    }
    assert digests[16] == digests[1]


def test_a_read_task_reads_its_units_in_order(ray_cluster, tmp_path):
    from dedupe_at_scale.io.datasource import files_per_task, parquet_datasource, read_units
    from dedupe_at_scale.io.storage import resolve

    paths = []
    for f in range(7):
        path = tmp_path / f"f{f}.parquet"
        pq.write_table(pa.table({"x": list(range(f * 10, f * 10 + f + 1))}), path)
        paths.append(str(path))
    source = parquet_datasource(resolve(str(tmp_path)), paths)
    assert source.units_per_task == 1 and files_per_task(64 * 16 + 63) == 16
    source.units_per_task = 3  # what the write pass would take for 192 files
    tasks = source.get_read_tasks(1)
    assert len(tasks) == source.read_tasks == 3
    assert [list(t.metadata.input_files) for t in tasks] == [paths[:3], paths[3:6], paths[6:]]
    rows = [r["x"] for r in read_units(source).take_all()]
    assert rows == [x for f in range(7) for x in range(f * 10, f * 10 + f + 1)]


def test_the_staging_sink_stages_each_unit_of_a_task_whole(tmp_path):
    """A task's blocks as Ray may hand them to the sink: a unit split over
    two blocks, and a block holding the end of one unit, a whole unit and
    the start of another. Each unit's staged file holds its rows in order."""
    from dedupe_at_scale import columns as col
    from dedupe_at_scale.config import config_from_dict
    from dedupe_at_scale.io.storage import resolve
    from dedupe_at_scale.job.annotate import StagingDatasink, staged_name

    def rows(unit: int, first: int, count: int) -> pa.Table:
        uids = [(unit << 32) + r for r in range(first, first + count)]
        return pa.table({col.UID: pa.array(uids, pa.int64()), "text": [str(u) for u in uids]})

    blocks = [
        rows(4, 0, 3),
        pa.concat_tables([rows(4, 3, 2), rows(5, 0, 4), rows(6, 0, 1)]),
        rows(6, 1, 2).slice(0, 0),  # an empty block changes nothing
        rows(6, 1, 2),
    ]
    cfg = config_from_dict({"output": {"rejected_text": True}})
    StagingDatasink(resolve(str(tmp_path)), str(tmp_path), cfg).write(blocks, None)
    staged = {p.name: pq.read_table(p) for p in tmp_path.glob("*.parquet")}
    assert sorted(staged) == [staged_name(u) for u in (4, 5, 6)]
    for unit, count in ((4, 5), (5, 4), (6, 3)):
        assert staged[staged_name(unit)].equals(rows(unit, 0, count))
