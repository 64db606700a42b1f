"""Input discovery, footer checks and per-block preparation, without Ray."""

import gc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_table
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import InputConfig
from dedupe_at_scale.io.inputs import InputError, discover_inputs, plan_units
from dedupe_at_scale.io.rows import read_unit
from dedupe_at_scale.io.storage import StorageError, resolve


def discover(path, **cfg):
    return discover_inputs(resolve(str(path)), InputConfig(**cfg))


def test_discovers_sorted_files_in_directory_and_glob(tmp_path):
    for name in ["b.parquet", "a.parquet", "sub/c.parquet"]:
        write_table(tmp_path / name, {"text": ["x"]})
    (tmp_path / "notes.txt").write_text("ignored")
    files = discover(tmp_path)
    assert [f.relpath for f in files] == ["a.parquet", "b.parquet", "sub/c.parquet"]
    assert [f.relpath for f in discover(tmp_path / "*.parquet")] == ["a.parquet", "b.parquet"]


def test_missing_input_and_no_parquet(tmp_path):
    with pytest.raises(StorageError, match="input not found"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="no Parquet files"):
        discover(tmp_path / "empty")


def test_missing_text_column_names_file_and_columns(tmp_path):
    path = write_table(tmp_path / "shard.parquet", {"body": ["x"], "id": ["1"]})
    with pytest.raises(
        InputError, match=r"shard.parquet: missing text column 'text' \(columns: body, id"
    ):
        discover(tmp_path)
    assert discover(tmp_path, text_column="body")[0].path == str(path)


def test_non_string_text_column(tmp_path):
    write_table(tmp_path / "ints.parquet", {"text": [1, 2]})
    with pytest.raises(InputError, match="ints.parquet: text column 'text' has type int64"):
        discover(tmp_path)


def test_empty_and_non_parquet_files(tmp_path):
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(InputError, match=r"zero.parquet: file is empty \(0 bytes\)"):
        discover(tmp_path)
    (tmp_path / "zero.parquet").write_text("this is not parquet at all")
    with pytest.raises(InputError, match="zero.parquet: not a readable Parquet file"):
        discover(tmp_path)


def test_zero_row_file_is_valid_and_yields_nothing(tmp_path):
    write_table(tmp_path / "none.parquet", {"text": pa.array([], pa.string())})
    files = discover(tmp_path)
    assert files[0].num_rows == 0
    units = plan_units(files, 100)
    assert read_unit(resolve(str(tmp_path)), units[0], InputConfig()).num_rows == 0


def test_units_follow_row_groups(tmp_path):
    texts = [f"t{i}" for i in range(1000)]
    write_table(tmp_path / "big.parquet", {"text": texts}, row_group_size=100)
    files = discover(tmp_path)
    units = plan_units(files, rows_per_task=250)
    assert [u.num_rows for u in units] == [200, 200, 200, 200, 200]
    assert [u.slices[0].first_row for u in units] == [0, 200, 400, 600, 800]
    table = read_unit(resolve(str(tmp_path)), units[2], InputConfig())
    assert table.column("text").to_pylist() == texts[400:600]
    assert table.column(col.ROW).to_pylist() == list(range(400, 600))


def test_generated_ids_are_stable_path_and_row(tmp_path):
    write_table(tmp_path / "part" / "x.parquet", {"text": ["a", "b", "c"], "meta": [1, 2, 3]})
    files = discover(tmp_path)
    table = read_unit(resolve(str(tmp_path)), plan_units(files, 10)[0], InputConfig())
    assert table.column("id").to_pylist() == [
        "part/x.parquet#0",
        "part/x.parquet#1",
        "part/x.parquet#2",
    ]
    assert table.column("meta").to_pylist() == [1, 2, 3]  # passes through


def read_one(tmp_path, columns, schema=None, **cfg):
    write_table(tmp_path / "f.parquet", columns, schema=schema)
    config = InputConfig(**cfg)
    files = discover_inputs(resolve(str(tmp_path)), config)
    return read_unit(resolve(str(tmp_path)), plan_units(files, 100)[0], config)


def test_null_text_is_an_error_naming_file_and_row(tmp_path):
    with pytest.raises(InputError, match=r"f.parquet: row 1 has null text in column 'text'"):
        read_one(tmp_path, {"text": ["ok", None, "ok"]})


def test_null_text_can_be_quarantined(tmp_path):
    table = read_one(tmp_path, {"text": ["ok", None]}, on_invalid_document="quarantine")
    assert table.column(col.STAGE).to_pylist() == [None, "input"]
    assert table.column(col.RULE).to_pylist() == [None, "null_text"]
    assert "row 1 of" in table.column(col.REASON)[1].as_py()


def test_binary_text_is_decoded_and_invalid_utf8_named(tmp_path):
    schema = pa.schema([("text", pa.binary())])
    good = read_one(tmp_path, {"text": ["héllo".encode()]}, schema=schema)
    assert good.column("text").to_pylist() == ["héllo"]
    assert good.schema.field("text").type == pa.string()
    with pytest.raises(InputError, match="row 1 has text that is not valid UTF-8"):
        read_one(tmp_path, {"text": [b"fine", b"\xff\xfe bad"]}, schema=schema)
    table = read_one(
        tmp_path,
        {"text": [b"fine", b"\xff\xfe bad"]},
        schema=schema,
        on_invalid_document="quarantine",
    )
    assert table.column(col.RULE).to_pylist() == [None, "invalid_utf8"]


@pytest.mark.parametrize(
    "text",
    [pa.array(["a", "b", "a"]).dictionary_encode(), pa.array(["a", "b", "a"], pa.large_string()),
     pa.array(["a", "b", "a"], pa.string_view())],
    ids=["dictionary", "large_string", "string_view"],
)  # fmt: skip
def test_dictionary_and_large_string_text(tmp_path, text):
    pq.write_table(pa.table({"text": text}), tmp_path / "f.parquet", store_schema=True)
    files = discover(tmp_path)
    table = read_unit(resolve(str(tmp_path)), plan_units(files, 10)[0], InputConfig())
    assert table.column("text").to_pylist() == ["a", "b", "a"]
    assert table.schema.field("text").type == pa.string()  # one type for every stage


def test_a_footer_is_freed_when_its_file_is_inspected(tmp_path):
    """No footer waits for the cyclic collector: the driver reads every
    input footer at planning, and FileMetaData with the ParquetSchema it
    makes hold each other (whole documents sit in the text column's
    statistics)."""
    for i in range(3):
        write_table(tmp_path / f"part-{i}.parquet", {"text": ["a long document"] * 10})
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        files = discover_inputs(resolve(str(tmp_path)), InputConfig())
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if "pyarrow" in type(o).__module__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert [f.num_rows for f in files] == [10, 10, 10]
    assert files[0].schema.names == ["text"]
    assert left == []
