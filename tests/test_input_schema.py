"""Shards written by different tools (io/schema.py): one input schema decided
from the footers before Ray starts, every unit cast to it; ids whose types
disagree become strings; what cannot be reconciled stops the job naming the
column, both types and a file of each. Null or empty ids: an error naming
file and row, a null_id rejection, or a generated id (input.id_policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import GOOD_EN, write_table
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import ConfigError, config_from_dict
from dedupe_at_scale.io.inputs import InputError, discover_inputs, plan_units
from dedupe_at_scale.io.rows import read_unit
from dedupe_at_scale.io.schema import SchemaError, unify_input_schema
from dedupe_at_scale.io.storage import resolve
from dedupe_at_scale.job.pipeline import run_job
from dedupe_at_scale.job.plan import plan_job
from dedupe_at_scale.job.report import summarize

TEXTS = [f"{GOOD_EN}\nThis is copy number {i} of the text." for i in range(4)]
POINT = pa.struct([("x", pa.int32())])
POINT_WIDER = pa.struct([("x", pa.int64()), ("label", pa.string())])


def drifting_shards(root: Path) -> None:
    """Two shards that disagree on every kind of type Arrow can widen."""
    write_table(
        root / "a.parquet",
        {"id": [1, 2], "text": TEXTS[:2], "score": [0.5, 0.25],
         "source": ["web", "books"], "point": [{"x": 1}, {"x": 2}]},
        schema=pa.schema([("id", pa.int32()), ("text", pa.string()), ("score", pa.float32()),
                          ("source", pa.string()), ("point", POINT)]),
    )  # fmt: skip
    write_table(
        root / "b.parquet",
        {"id": [3, 4], "text": TEXTS[2:], "score": [0.75, 1.0],
         "source": pa.array(["web", "web"]).dictionary_encode(),
         "point": [{"x": 3, "label": "p"}, {"x": 4, "label": None}], "extra": [True, False]},
        schema=pa.schema([("id", pa.int64()), ("text", pa.large_string()),
                          ("score", pa.float64()),
                          ("source", pa.dictionary(pa.int32(), pa.string())),
                          ("point", POINT_WIDER), ("extra", pa.bool_())]),
    )  # fmt: skip


def unified(root: Path, **input_cfg):
    cfg = config_from_dict({"input": input_cfg}).input
    files = discover_inputs(resolve(str(root)), cfg)
    return unify_input_schema(files, cfg), files, cfg


def test_compatible_types_are_widened_and_the_files_changed_are_listed(tmp_path):
    drifting_shards(tmp_path)
    schema, _, _ = unified(tmp_path)
    assert schema.order == ["id", "text", "score", "source", "point", "extra"]
    assert {f.name: f.type for f in schema.schema} == {
        "id": pa.int64(), "score": pa.float64(), "source": pa.string(),
        "point": POINT_WIDER, "extra": pa.bool_(),
    }  # fmt: skip
    assert schema.promoted == {
        "a.parquet": {"id": "int32 -> int64", "score": "float -> double",
                      "point": f"{POINT} -> {POINT_WIDER}"},
        "b.parquet": {"source": "dictionary<values=string, indices=int32, ordered=0> -> string"},
    }  # fmt: skip


def test_every_unit_is_read_in_the_unified_schema(tmp_path):
    drifting_shards(tmp_path)
    schema, files, cfg = unified(tmp_path)
    location = resolve(str(tmp_path))
    tables = [read_unit(location, u, cfg, schema) for u in plan_units(files, 10)]
    first, second = (t.select(schema.order) for t in tables)
    assert first.schema == second.schema
    assert first.column("point").to_pylist() == [{"x": 1, "label": None}, {"x": 2, "label": None}]
    assert first.column("extra").to_pylist() == [None, None]  # absent there: null
    assert second.column("source").to_pylist() == ["web", "web"]


def test_int_and_string_ids_all_become_strings(tmp_path):
    write_table(tmp_path / "a.parquet", {"id": [1, 2], "text": TEXTS[:2]})
    write_table(tmp_path / "b.parquet", {"id": ["x", "y"], "text": TEXTS[2:]})
    schema, _, _ = unified(tmp_path)
    assert schema.schema.field("id").type == pa.string()
    assert schema.promoted == {"a.parquet": {"id": "int64 -> string"}}


def test_ids_are_strings_when_some_file_has_none(tmp_path):
    write_table(tmp_path / "a.parquet", {"id": [1, 2], "text": TEXTS[:2]})
    write_table(tmp_path / "b.parquet", {"text": TEXTS[2:]})  # ids generated: "b.parquet#0"
    schema, _, _ = unified(tmp_path)
    assert schema.schema.field("id").type == pa.string()


def test_irreconcilable_types_stop_the_job_before_ray_naming_both(tmp_path):
    write_table(tmp_path / "in" / "a.parquet", {"text": TEXTS[:2], "point": [{"x": 1}] * 2},
                schema=pa.schema([("text", pa.string()), ("point", POINT)]))  # fmt: skip
    write_table(tmp_path / "in" / "b.parquet", {"text": TEXTS[2:], "point": [{"x": "1"}] * 2})
    cfg = config_from_dict({})
    with pytest.raises(SchemaError) as caught:
        plan_job(str(tmp_path / "in"), str(tmp_path / "out"), cfg)  # no Ray needed
    message = str(caught.value)
    assert "column 'point'" in message and "input.schema" in message
    assert f"{POINT} in " in message and "a.parquet" in message
    assert "struct<x: string> in " in message and "b.parquet" in message
    assert isinstance(caught.value, InputError)  # reported like any bad input


def test_a_pinned_type_settles_a_disagreement(tmp_path):
    write_table(tmp_path / "a.parquet", {"text": TEXTS[:2], "year": [2020, 2021]})
    write_table(tmp_path / "b.parquet", {"text": TEXTS[2:], "year": ["2022", "n/a"]})
    with pytest.raises(SchemaError, match="column 'year' has type int64 in .*a.parquet"):
        unified(tmp_path)
    schema, files, cfg = unified(tmp_path, schema={"year": "string"})
    location = resolve(str(tmp_path))
    years = [read_unit(location, u, cfg, schema).column("year") for u in plan_units(files, 10)]
    assert [y.to_pylist() for y in years] == [["2020", "2021"], ["2022", "n/a"]]
    with pytest.raises(ConfigError, match="input.schema.year: 'text' is not a pyarrow type"):
        unified(tmp_path, schema={"year": "text"})


def test_a_pinned_type_a_file_cannot_take_names_the_file(tmp_path):
    write_table(tmp_path / "a.parquet", {"text": TEXTS[:2], "year": ["2020", "soon"]})
    schema, files, cfg = unified(tmp_path, schema={"year": "int64"})
    with pytest.raises(SchemaError, match=r"a.parquet: column 'year' \(string\) cannot be cast"):
        read_unit(resolve(str(tmp_path)), plan_units(files, 10)[0], cfg, schema)


@pytest.mark.parametrize("missing", [None, ""])
def test_null_or_empty_ids_found_at_planning_from_the_footer(tmp_path, missing):
    write_table(tmp_path / "a.parquet", {"id": ["a", "b", missing, "c"], "text": TEXTS[:4]},
                row_group_size=2)  # fmt: skip
    what = "1 null ids" if missing is None else "an empty id"
    with pytest.raises(InputError, match=rf"a.parquet: row group 1 \(rows 2-3\) holds {what} in "
                       r"column 'id' \(from the file's statistics; set input.id_policy: generate"):  # fmt: skip
        unified(tmp_path)
    # The other settings read the file: its rows are flagged or filled there.
    unified(tmp_path, on_invalid_document="quarantine")
    unified(tmp_path, id_policy="generate")


@pytest.mark.parametrize("missing", [None, ""])
def test_null_or_empty_ids_in_each_mode(tmp_path, missing):
    # Without column statistics the footer cannot tell: the read finds them.
    write_table(tmp_path / "a.parquet", {"id": ["a", missing, "c"], "text": TEXTS[:3]},
                write_statistics=False)  # fmt: skip

    def read(**input_cfg):
        schema, files, cfg = unified(tmp_path, **input_cfg)
        return read_unit(resolve(str(tmp_path)), plan_units(files, 10)[0], cfg, schema)

    with pytest.raises(InputError, match=r"a.parquet: row 1 has a null or empty id in column 'id'"):
        read()
    flagged = read(on_invalid_document="quarantine")
    assert flagged.column(col.RULE).to_pylist() == [None, "null_id", None]
    assert flagged.column(col.REASON)[1].as_py() == f"null_id: row 1 of {tmp_path / 'a.parquet'}"
    filled = read(id_policy="generate")
    assert filled.column("id").to_pylist() == ["a", "a.parquet#1", "c"]
    assert filled.column(col.RULE).to_pylist() == [None, None, None]


def test_generated_ids_make_integer_id_columns_strings(tmp_path):
    write_table(tmp_path / "a.parquet", {"id": [7, None], "text": TEXTS[:2]})
    schema, files, cfg = unified(tmp_path, id_policy="generate")
    table = read_unit(resolve(str(tmp_path)), plan_units(files, 10)[0], cfg, schema)
    assert table.column("id").to_pylist() == ["7", "a.parquet#1"]


@pytest.mark.parametrize("dedup", [False, True])
def test_drifting_shards_and_null_ids_run_to_a_complete_output(ray_cluster, tmp_path, dedup):
    root = tmp_path / "in"
    drifting_shards(root)
    write_table(root / "c.parquet",
                {"id": ["s1", None, "s3"], "text": [TEXTS[0] + " More.", TEXTS[1] + " Other.", None]},
                schema=pa.schema([("id", pa.string()), ("text", pa.string())]))  # fmt: skip
    cfg = config_from_dict({
        "input": {"on_invalid_document": "quarantine"},
        "langid": {"enabled": False}, "quality": {"enabled": False},
        "dedup": {"enabled": dedup}, "output": {"rejected_text": True},
    })  # fmt: skip
    run_job(str(root), str(tmp_path / "out"), cfg)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    data = pq.read_table(tmp_path / "out" / "data")
    rejected = pq.read_table(tmp_path / "out" / "rejected")
    counts = manifest["counts"]
    assert counts["input"] == 7 == counts["kept"] + counts["rejected"]
    ids = data.column("id").to_pylist() + rejected.column("id").to_pylist()
    assert sorted(i or "" for i in ids) == ["", "1", "2", "3", "4", "s1", "s3"]
    assert data.schema.field("score").type == pa.float64()
    assert data.schema.field("point").type == POINT_WIDER
    input_rejections = [(r["id"] or "", r["rule"]) for r in rejected.to_pylist()
                        if r["stage"] == "input"]  # fmt: skip
    assert sorted(input_rejections) == [("", "null_id"), ("s3", "null_text")]
    if dedup:  # the copies of one text: dedup keeps one of the five
        assert counts["kept"] == 1
    assert manifest["input_schema"]["columns"]["id"] == "string"
    assert set(manifest["input_schema"]["promoted_files"]) == {"a.parquet", "b.parquet"}


def test_a_null_id_stops_the_job_naming_file_and_row_and_publishes_nothing(ray_cluster, tmp_path):
    root = tmp_path / "in"
    write_table(root / "a.parquet", {"id": ["a", None], "text": TEXTS[:2]}, write_statistics=False)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"a.parquet: row 1 has a null or empty id"):
        run_job(str(root), str(out), config_from_dict({}))
    assert sorted(p.name for p in out.iterdir()) == ["_staging"]


def clashing_shards(root: Path) -> None:
    """Shards carrying columns the job writes itself, as FineWeb's carry
    `language` and `language_score`, plus one with the job's internal prefix."""
    write_table(
        root / "a.parquet",
        {"id": ["a0", "a1"], "text": TEXTS[:2], "source": ["web", "news"],
         "language": ["en", "en"], "language_score": [0.9, 0.8], "n_tokens": [11, 12],
         "split": ["train", "test"], "mixture_repeat": [5, 6], "__dds_note": ["x", "y"]},
    )  # fmt: skip
    write_table(
        root / "b.parquet",
        {"id": ["b0", "b1"], "text": TEXTS[2:], "source": ["web", "news"],
         "language": pa.array(["de", "de"]).dictionary_encode()},
    )  # fmt: skip


CLASH_CFG = {
    "dedup": {"enabled": False},  # TEXTS are near-twins
    "mixture": {"enabled": True, "group_column": "source", "weights": {"web": 1, "news": 1}},
    "output": {"splits": {"train": 0.5, "test": 0.5}},
}
RENAMED = {
    "language": "input_language",
    "language_score": "input_language_score",
    "n_tokens": "input_n_tokens",
    "split": "input_split",
    "mixture_repeat": "input_mixture_repeat",
    "__dds_note": "input___dds_note",
}


def test_input_columns_the_job_writes_are_kept_under_input_names(ray_cluster, tmp_path):
    clashing_shards(tmp_path / "in")
    run_job(str(tmp_path / "in"), str(tmp_path / "out"), config_from_dict(CLASH_CFG))
    data = pq.read_table(tmp_path / "out" / "data")
    assert len(set(data.column_names)) == len(data.column_names)
    rows = {r["id"]: r for r in data.to_pylist()}
    assert sorted(rows) == ["a0", "a1", "b0", "b1"]
    # The input's values under the new names; the job's own under the old.
    assert [rows[i]["input_language"] for i in sorted(rows)] == ["en", "en", "de", "de"]
    assert [rows[i]["input_n_tokens"] for i in sorted(rows)] == [11, 12, None, None]
    assert [rows[i]["input_split"] for i in sorted(rows)] == ["train", "test", None, None]
    assert [rows[i]["input_mixture_repeat"] for i in sorted(rows)] == [5, 6, None, None]
    assert [rows[i]["input___dds_note"] for i in sorted(rows)] == ["x", "y", None, None]
    assert {r["language"] for r in rows.values()} == {"en"}
    assert all(r["n_tokens"] > 12 for r in rows.values())
    assert {r["split"] for r in rows.values()} <= {"train", "test"}
    assert {r["mixture_repeat"] for r in rows.values()} == {0}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["input_schema"]["renamed_columns"] == RENAMED
    assert "language -> input_language" in summarize(manifest)


def test_a_clash_stops_the_job_when_asked_naming_column_file_and_writer(tmp_path):
    clashing_shards(tmp_path / "in")
    cfg = config_from_dict({**CLASH_CFG, "input": {"on_column_clash": "error"}})
    with pytest.raises(
        SchemaError,
        match=r"column 'language' of \S*/in/a.parquet is a column the job writes \(the langid stage\); "
        r"set input.on_column_clash: rename to keep it as 'input_language'",
    ):
        plan_job(str(tmp_path / "in"), str(tmp_path / "out"), cfg)


def test_clashes_the_job_cannot_rename(tmp_path):
    write_table(tmp_path / "in" / "a.parquet",
                {"id": ["a"], "text": TEXTS[:1], "language": ["en"], "input_language": ["en"]})  # fmt: skip
    with pytest.raises(SchemaError, match=r"'input_language' is taken too"):
        plan_job(str(tmp_path / "in"), str(tmp_path / "out"), config_from_dict({}))
    cfg = config_from_dict({"input": {"text_column": "language"}})
    with pytest.raises(ConfigError, match=r"input.text_column 'language' is a column the job"):
        plan_job(str(tmp_path / "in"), str(tmp_path / "out"), cfg)


def test_only_the_columns_this_config_writes_are_renamed(tmp_path):
    clashing_shards(tmp_path / "in")
    cfg = config_from_dict({"tokens": {"enabled": False}})  # no mixture, splits or tokens
    plan = plan_job(str(tmp_path / "in"), str(tmp_path / "out"), cfg)
    plan.lease.release()
    # The language columns stay in every run's schema, langid on or off.
    assert plan.input_schema.renamed == {
        k: v for k, v in RENAMED.items() if k in ("language", "language_score", "__dds_note")
    }


def test_an_empty_data_dir_has_the_schema_of_a_full_one(ray_cluster, tmp_path):
    """Every row rejected: data/'s stand-in shard still has the columns the
    steps add (mixture_repeat, split), in the order a full run writes them."""
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
    mixture = {**CLASH_CFG["mixture"], "weights": {"web": 1}}
    cfg = config_from_dict(
        {**CLASH_CFG, "mixture": mixture, "input": {"on_invalid_document": "quarantine"}}
    )
    schemas = {}
    for name, text in (("full", TEXTS[0]), ("empty", None)):
        write_table(tmp_path / name / "a.parquet",
                    {"id": ["c0"], "text": [text], "source": ["web"]}, schema=schema)  # fmt: skip
        run_job(str(tmp_path / name), str(tmp_path / f"{name}-out"), cfg)
        data = pq.read_table(tmp_path / f"{name}-out" / "data")
        assert data.num_rows == (1 if text else 0)
        schemas[name] = data.schema.remove_metadata()
    assert schemas["empty"] == schemas["full"]
    assert schemas["full"].names[-2:] == ["mixture_repeat", "split"]
