"""Data lakes as Spark, Hive and Ray Data leave them: key=value partition
directories become columns (input.partitioning: hive), and paths below the
root whose name starts with _ or . (_SUCCESS, _temporary/ of an unfinished
write, .crc checksums) are not read, and are listed in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import GOOD_EN, write_table
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.inputs import discover_inputs, hive_partitions, plan_units
from dedupe_at_scale.io.rows import read_unit
from dedupe_at_scale.io.schema import SchemaError, unify_input_schema
from dedupe_at_scale.io.storage import HIDDEN, NOT_PARQUET, StorageError, list_input_files, resolve
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.report import summarize

TEXTS = [
    f"{GOOD_EN}\nNumber {i}: {' '.join([f'word{i * 7 + k}' for k in range(40)])}." for i in range(6)
]


def spark_lake(root: Path) -> None:
    """Two dumps by language, each file with a .crc beside it, a _SUCCESS
    marker, and an unfinished task's output under _temporary/ (a copy)."""
    for i, (dump, lang) in enumerate([("2024-10", "en"), ("2024-10", "de"), ("2024-18", "en")]):
        part = root / f"dump={dump}" / f"language={lang}"
        write_table(part / "part-0.parquet",
                    {"id": [f"d{i}a", f"d{i}b"], "text": TEXTS[2 * i : 2 * i + 2]})  # fmt: skip
        (part / ".part-0.parquet.crc").write_bytes(b"crc")
    (root / "_SUCCESS").write_bytes(b"")
    write_table(root / "_temporary" / "0" / "task_1" / "dump=2024-10" / "part-0.parquet",
                {"id": ["d0a"], "text": TEXTS[:1]})  # fmt: skip
    (root / "README.txt").write_text("how this lake was made")


def test_listing_skips_metadata_unfinished_writes_and_other_files(tmp_path):
    spark_lake(tmp_path)
    listing = list_input_files(resolve(str(tmp_path)))
    assert [Path(p).relative_to(tmp_path).as_posix() for p in listing.files] == [
        "dump=2024-10/language=de/part-0.parquet",
        "dump=2024-10/language=en/part-0.parquet",
        "dump=2024-18/language=en/part-0.parquet",
    ]
    assert listing.skipped == {
        "README.txt": NOT_PARQUET,
        "_SUCCESS": HIDDEN,
        "_temporary/0/task_1/dump=2024-10/part-0.parquet": HIDDEN,
        "dump=2024-10/language=de/.part-0.parquet.crc": HIDDEN,
        "dump=2024-10/language=en/.part-0.parquet.crc": HIDDEN,
        "dump=2024-18/language=en/.part-0.parquet.crc": HIDDEN,
    }
    # A glob is held to the same rule below its fixed part ...
    globbed = list_input_files(resolve(str(tmp_path / "**" / "*.parquet")))
    assert len(globbed.files) == 3
    assert "_temporary/0/task_1/dump=2024-10/part-0.parquet" in globbed.skipped
    # ... a file named outright is read, whatever its name.
    named = tmp_path / "_temporary" / "0" / "task_1" / "dump=2024-10" / "part-0.parquet"
    assert list_input_files(resolve(str(named))).files == [str(named)]


def test_an_input_of_only_skipped_paths_says_what_it_skipped(tmp_path):
    write_table(tmp_path / "_temporary" / "part-0.parquet", {"text": ["x"]})
    with pytest.raises(StorageError, match=r"no Parquet files .* \(1 other paths: _temporary/"):
        list_input_files(resolve(str(tmp_path)))


def test_hive_partition_values():
    cfg = config_from_dict({}).input
    path = "a=1/b=x%20y/c=__HIVE_DEFAULT_PARTITION__/plain/text=no/f=not-a-dir.parquet"
    assert hive_partitions(path, cfg) == (("a", "1"), ("b", "x y"), ("c", None))
    assert hive_partitions(path, config_from_dict({"input": {"partitioning": "none"}}).input) == ()


def units_of(root: Path, **input_cfg) -> dict[str, pa.Table]:
    cfg = config_from_dict({"input": input_cfg}).input
    location = resolve(str(root))
    files = discover_inputs(location, cfg)
    schema = unify_input_schema(files, cfg)
    return {
        u.slices[0].file.relpath: read_unit(location, u, cfg, schema)
        for u in plan_units(files, 100)
    }


def test_partition_directories_become_columns_unless_the_file_has_them(tmp_path):
    write_table(tmp_path / "year=2023" / "lang=en" / "a.parquet", {"text": ["x", "y"]})
    write_table(tmp_path / "year=2024" / "lang=en" / "b.parquet",
                {"text": ["z"], "lang": ["en-GB"]})  # fmt: skip
    tables = units_of(tmp_path)
    a, b = tables["year=2023/lang=en/a.parquet"], tables["year=2024/lang=en/b.parquet"]
    assert a.column("year").to_pylist() == ["2023", "2023"]
    assert a.column("lang").to_pylist() == ["en", "en"]
    assert b.column("lang").to_pylist() == ["en-GB"]  # the file's own column wins
    assert a.schema.field("year").type == pa.string()
    assert (
        "year"
        not in units_of(tmp_path, partitioning="none")["year=2024/lang=en/b.parquet"].column_names
    )
    pinned = units_of(tmp_path, schema={"year": "int64"})
    assert pinned["year=2024/lang=en/b.parquet"].column("year").to_pylist() == [2024]


def test_a_partition_value_its_pinned_type_cannot_take_names_the_file(tmp_path):
    write_table(tmp_path / "year=recent" / "a.parquet", {"text": ["x"]})
    with pytest.raises(
        SchemaError, match=r"a.parquet: partition directory year=recent cannot be cast to int64"
    ):
        units_of(tmp_path, schema={"year": "int64"})


def test_a_spark_lake_runs_with_its_partitions_as_columns(ray_cluster, tmp_path):
    spark_lake(tmp_path / "lake")
    cfg = config_from_dict({"dedup": {"enabled": False}})  # TEXTS share their first lines
    run_job(str(tmp_path / "lake"), str(tmp_path / "out"), cfg)
    data = pq.read_table(tmp_path / "out" / "data")
    rows = {r["id"]: r for r in data.to_pylist()}
    assert sorted(rows) == ["d0a", "d0b", "d1a", "d1b", "d2a", "d2b"]  # not the _temporary copy
    assert [rows[i]["dump"] for i in sorted(rows)] == ["2024-10"] * 4 + ["2024-18"] * 2
    # The directory's language is the input's; the job's own is measured.
    assert [rows[i]["input_language"] for i in sorted(rows)] == ["en", "en", "de", "de", "en", "en"]
    assert {rows[i]["language"] for i in rows} == {"en"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    skipped = manifest["input"]["skipped"]
    assert skipped["count"] == 6
    assert skipped["by_reason"] == {HIDDEN: 5, NOT_PARQUET: 1}
    assert manifest["input_schema"]["columns"]["dump"] == "string"
    assert "Not read: 6 paths under the input" in summarize(manifest)


def test_small_files_are_read_several_to_a_unit(tmp_path):
    """Files below input.min_rows_per_task are read whole, several to a unit
    (in input order, uids following each other); a large file between them
    keeps its own units."""
    for i in range(10):
        write_table(tmp_path / f"a{i:02d}.parquet", {"text": [f"a{i} {k}" for k in range(3)]})
    write_table(
        tmp_path / "b.parquet", {"text": [f"b {k}" for k in range(500)]}, row_group_size=100
    )
    for i in range(5):
        write_table(tmp_path / f"c{i}.parquet", {"text": [f"c{i} {k}" for k in range(3)]})
    files = discover_inputs(resolve(str(tmp_path)), config_from_dict({}).input)
    units = plan_units(files, rows_per_task=300, min_rows_per_task=20)
    assert [[s.file.relpath for s in u.slices] for u in units] == [
        [f"a{i:02d}.parquet" for i in range(7)],  # 21 rows: full
        [f"a{i:02d}.parquet" for i in range(7, 10)],  # cut short by b
        ["b.parquet"],
        ["b.parquet"],
        [f"c{i}.parquet" for i in range(5)],
    ]
    assert [u.num_rows for u in units] == [21, 9, 300, 200, 15]
    table = read_unit(resolve(str(tmp_path)), units[0], config_from_dict({}).input)
    assert table.column("text").to_pylist() == [f"a{i} {k}" for i in range(7) for k in range(3)]
    assert table.column("id").to_pylist()[3:5] == ["a01.parquet#0", "a01.parquet#1"]
    assert table.column(col.UID).to_pylist() == list(range(21))  # unit 0


def test_many_small_files_give_the_output_of_one_file(ray_cluster, sample_dir, tmp_path):
    """2,000 documents in 500 files of 4 and in one file: the same data/,
    rejected/ and duplicates/, in 10 read units instead of 500."""
    table = pq.read_table(sample_dir)
    write_table(tmp_path / "one" / "all.parquet", table.to_pydict())
    (tmp_path / "many").mkdir()
    for i in range(0, table.num_rows, 4):
        pq.write_table(table.slice(i, 4), tmp_path / "many" / f"part-{i // 4:04d}.parquet")
    outputs = {}
    for name in ("one", "many"):
        result = run_job(str(tmp_path / name), str(tmp_path / f"{name}-out"), config_from_dict({}))
        outputs[name] = {
            d: pq.read_table(tmp_path / f"{name}-out" / d)
            for d in ("data", "rejected", "duplicates")
        }
        outputs[name]["units"] = result.manifest["annotate"]["units"]
    assert outputs["many"]["units"] == 10 and outputs["one"]["units"] == 1
    assert outputs["one"]["duplicates"].num_rows > 100
    lineage = ["source_file", "source_row"]  # where each row came from differs, by design
    for d in ("data", "rejected"):
        many, one = outputs["many"][d], outputs["one"][d]
        assert many.drop_columns(lineage).equals(one.drop_columns(lineage)), d
        # Row i of the one file is row i % 4 of small file i // 4.
        rows = one.column("source_row").to_numpy()
        assert many.column("source_row").to_pylist() == (rows % 4).tolist()
        assert many.column("source_file").to_pylist() == [
            f"part-{r // 4:04d}.parquet" for r in rows
        ]
    assert outputs["many"]["duplicates"].equals(outputs["one"]["duplicates"])
