"""The catalogue of bad inputs (docs/input-and-output.md, "Bad input"): each is either an
error naming the file and the problem, or a quarantine to rejected/ with a
reason, as input.on_invalid_file / on_invalid_document decide. Every run that
completes must account for every input: input = kept + rejected."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import GOOD_EN, write_table
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.io.inputs import InputError
from dedupe_at_scale.io.storage import StorageError
from dedupe_at_scale.job.pipeline import run_job

pytestmark = [pytest.mark.timeout(300)]

GOOD_IDS = ["g0", "g1", "g2"]


def good_file(root: Path) -> None:
    texts = [f"{GOOD_EN}\nThis is copy number {i} of the text." for i in range(len(GOOD_IDS))]
    write_table(root / "a-good.parquet", {"id": GOOD_IDS, "text": texts})


def job(mode: str, **extra):
    settings = {
        "input": {"on_invalid_file": mode, "on_invalid_document": mode},
        "dedup": {"enabled": False},
        "output": {"rejected_text": True},
    }
    for section, values in extra.items():
        settings.setdefault(section, {}).update(values)
    return config_from_dict(settings)


def assert_accounted(out: Path) -> tuple[pa.Table, pa.Table, dict]:
    """input = kept + rejected, in the manifest and in the files."""
    manifest = json.loads((out / "manifest.json").read_text())
    data = pq.read_table(out / "data")
    rejected = pq.read_table(out / "rejected")
    counts = manifest["counts"]
    assert counts["input"] == counts["kept"] + counts["rejected"]
    assert counts["kept"] == data.num_rows
    assert counts["rejected"] == rejected.num_rows
    return data, rejected, manifest


def truncated(root: Path) -> None:
    path = write_table(root / "b-bad.parquet", {"id": ["t0", "t1"], "text": [GOOD_EN] * 2})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def not_parquet(root: Path) -> None:
    (root / "b-bad.parquet").write_text("id,text\nx,this is a CSV file\n")


def empty_file(root: Path) -> None:
    (root / "b-bad.parquet").write_bytes(b"")


def missing_text(root: Path) -> None:
    write_table(root / "b-bad.parquet", {"id": ["m0", "m1"], "body": [GOOD_EN] * 2})


def text_wrong_type(root: Path) -> None:
    write_table(root / "b-bad.parquet", {"id": ["w0", "w1"], "text": [1, 2]})


def corrupt_pages(root: Path) -> None:
    # A page checksum lets the reader see that the text pages were damaged.
    path = write_table(
        root / "b-bad.parquet",
        {"id": ["c0", "c1"], "text": [GOOD_EN + "x" * 4000, GOOD_EN + "y" * 4000]},
        compression="none",
        write_page_checksum=True,
    )
    raw = bytearray(path.read_bytes())
    at = raw.index(b"xxxxxxxx")
    raw[at : at + 8] = b"XXXXXXXX"
    path.write_bytes(bytes(raw))


# (make the bad file, rule in rejected/, ids of its rejected rows, part of the
# error message). Uncountable files are one row named after the file; the rows
# of the others keep their ids, since the id column can still be read.
FILE_CASES = {
    "truncated": (truncated, "not_parquet", ["b-bad.parquet"], "not a readable Parquet file"),
    "not_parquet": (not_parquet, "not_parquet", ["b-bad.parquet"], "not a readable Parquet file"),
    "empty_file": (empty_file, "empty_file", ["b-bad.parquet"], "file is empty (0 bytes)"),
    "missing_text_column": (missing_text, "missing_text_column", ["m0", "m1"], "missing text column 'text'"),
    "text_not_string": (text_wrong_type, "text_not_string", ["w0", "w1"], "has type int64, expected string"),
    "corrupt_pages": (corrupt_pages, "unreadable_row_group", ["c0", "c1"], "cannot read row groups [0]"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_file_is_an_error_naming_it_or_quarantined(ray_cluster, tmp_path, case):
    make, rule, ids, message = FILE_CASES[case]
    root = tmp_path / "in"
    good_file(root)
    make(root)

    with pytest.raises(InputError) as error:
        run_job(str(root), str(tmp_path / "failed"), job("error"))
    assert "b-bad.parquet" in str(error.value) and message in str(error.value)
    assert not (tmp_path / "failed" / "manifest.json").exists()

    out = tmp_path / "out"
    run_job(str(root), str(out), job("quarantine"))
    data, rejected, manifest = assert_accounted(out)
    assert sorted(data.column("id").to_pylist()) == GOOD_IDS
    bad = [r for r in rejected.to_pylist() if r["rule"] == rule]
    assert len(bad) == len(ids) == manifest["counts"]["rules"]["input"][rule]
    assert all("b-bad.parquet" in r["reason"] and r["stage"] == "input" for r in bad)
    assert sorted(r["id"] for r in bad) == ids
    entry = next(f for f in manifest["input"]["files"] if f["path"].endswith("b-bad.parquet"))
    assert (entry.get("quarantined", {}).get("rule") == rule) == (case != "corrupt_pages")


def test_zero_row_file_is_valid_input(ray_cluster, tmp_path):
    root = tmp_path / "in"
    good_file(root)
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    write_table(root / "b-empty.parquet", {"id": [], "text": []}, schema=schema)
    data, rejected, manifest = assert_accounted(_run(root, tmp_path / "out", job("error")))
    assert sorted(data.column("id").to_pylist()) == GOOD_IDS and rejected.num_rows == 0
    assert [f["rows"] for f in manifest["input"]["files"]] == [3, 0]


def test_only_zero_row_files_give_an_empty_but_complete_output(ray_cluster, tmp_path):
    root = tmp_path / "in"
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    write_table(root / "empty.parquet", {"id": [], "text": []}, schema=schema)
    data, rejected, manifest = assert_accounted(_run(root, tmp_path / "out", job("error")))
    assert data.num_rows == rejected.num_rows == manifest["counts"]["input"] == 0


def test_every_file_quarantined_still_gives_every_output_and_its_schema(ray_cluster, tmp_path):
    """Nothing is staged, so no stage or step runs: the schemas come from the
    input footers and the stages' and steps' declarations."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.parquet").write_bytes(b"not parquet")
    out = tmp_path / "out"
    cfg = job("quarantine", dedup={"enabled": True})
    data, rejected, manifest = assert_accounted(_run(root, out, cfg))
    assert data.num_rows == 0 and rejected.num_rows == 1
    assert {"text", "id", "language", "language_score"} <= set(data.column_names)
    duplicates = pq.read_table(out / "duplicates")
    assert duplicates.num_rows == 0 and duplicates.column_names == [
        "id",
        "cluster_id",
        "kept",
        "similarity",
    ]
    assert manifest["output"]["duplicates"][0]["rows"] == 0
    assert manifest["dedup"]["enabled"] is True
    assert manifest["dedup"]["exact_duplicates_removed"] == 0


@pytest.mark.parametrize("problem", ["null_text", "invalid_utf8"])
def test_bad_document_is_an_error_naming_file_and_row_or_quarantined(
    ray_cluster, tmp_path, problem
):
    root = tmp_path / "in"
    good_file(root)
    bad = None if problem == "null_text" else b"caf\xe9 " + GOOD_EN.encode()
    write_table(
        root / "b-bad.parquet",
        {"id": ["d0", "d1"], "text": [GOOD_EN.encode(), bad]},
        schema=pa.schema([("id", pa.string()), ("text", pa.binary())]),
    )
    with pytest.raises(InputError, match=r"b-bad.parquet: row 1 has"):
        run_job(str(root), str(tmp_path / "failed"), job("error"))
    data, rejected, _ = assert_accounted(_run(root, tmp_path / "out", job("quarantine")))
    assert sorted(data.column("id").to_pylist()) == sorted([*GOOD_IDS, "d0"])
    assert [(r["id"], r["rule"]) for r in rejected.to_pylist()] == [("d1", problem)]


def test_duplicate_ids_are_an_error_naming_both_places_or_quarantined(ray_cluster, tmp_path):
    root = tmp_path / "in"
    good_file(root)
    texts = [GOOD_EN + "\nAnother text, with its own closing line.", GOOD_EN + "\nA third one."]
    write_table(root / "b-more.parquet", {"id": ["x", "g1"], "text": texts})
    with pytest.raises(InputError, match=r"'g1' at b-more.parquet#1 repeats a-good.parquet#1"):
        run_job(str(root), str(tmp_path / "failed"), job("error"))
    data, rejected, manifest = assert_accounted(_run(root, tmp_path / "out", job("quarantine")))
    assert sorted(data.column("id").to_pylist()) == [*GOOD_IDS, "x"]
    (row,) = rejected.to_pylist()
    assert (row["id"], row["stage"], row["rule"]) == ("g1", "input", "duplicate_id")
    assert row["text"] == texts[1]  # the later copy is the one rejected
    assert manifest["input"]["repeated_ids"] == 1


def test_repeated_ids_across_many_staged_files_match_a_plain_reference(ray_cluster, tmp_path):
    """24 staged files in 12 groups over 3 partitions, ids drawn with
    repeats (within a file, across files, three copies): the rejections are
    those of one pass in input order, first copy kept, with its reason."""
    import random

    rng = random.Random(5)
    root, seen, expected = tmp_path / "in", {}, set()
    for f in range(24):
        name = f"f{f:02d}.parquet"
        ids = [f"id{rng.randrange(60)}" for _ in range(5)]
        for row, doc_id in enumerate(ids):
            if doc_id in seen:
                expected.add(f"id {doc_id!r} at {name}#{row} repeats {seen[doc_id]}")
            else:
                seen[doc_id] = f"{name}#{row}"
        texts = [f"{GOOD_EN}\nThis is line {row} of file {f}." for row in range(len(ids))]
        write_table(root / name, {"id": ids, "text": texts})
    cfg = job("quarantine", input={"min_rows_per_task": 1}, dedup={"partitions": 3})
    data, rejected, manifest = assert_accounted(_run(root, tmp_path / "out", cfg))
    assert {r["reason"] for r in rejected.to_pylist() if r["rule"] == "duplicate_id"} == expected
    assert manifest["input"]["repeated_ids"] == len(expected) > 20
    assert sorted(data.column("id").to_pylist()) == sorted(seen)
    first = min(
        expected, key=lambda r: (r.split(" at ")[1].split("#")[0], int(r.split("#")[1].split()[0]))
    )
    with pytest.raises(InputError, match=re.escape(first)):
        run_job(str(root), str(tmp_path / "failed"), job("error", input={"min_rows_per_task": 1}))


def test_duplicate_ids_take_no_part_in_dedup(ray_cluster, tmp_path):
    root = tmp_path / "in"
    write_table(root / "a.parquet", {"id": ["a", "b", "a"], "text": [GOOD_EN, GOOD_EN, GOOD_EN]})
    cfg = job("quarantine", dedup={"enabled": True})
    data, rejected, _ = assert_accounted(_run(root, tmp_path / "out", cfg))
    assert data.column("id").to_pylist() == ["a"]
    assert sorted((r["id"], r["rule"]) for r in rejected.to_pylist()) == [
        ("a", "duplicate_id"),
        ("b", "exact_duplicate"),
    ]


def test_a_50_mb_document(ray_cluster, tmp_path):
    root = tmp_path / "in"
    good_file(root)
    words = [f"w{i % 50_000}" for i in range(8_000_000)]
    huge = " ".join(words)[: 50 * 1024 * 1024]
    assert len(huge) >= 40 * 1024 * 1024
    write_table(root / "b-huge.parquet", {"id": ["huge"], "text": [huge]})
    # Every stage on: the rules reject it (and must not take minutes doing so).
    started = time.time()
    cfg = job("error", dedup={"enabled": True}, output={"rejected_text": False})
    data, rejected, _ = assert_accounted(_run(root, tmp_path / "out", cfg))
    assert time.time() - started < 120
    huge_row = next(r for r in rejected.to_pylist() if r["id"] == "huge")
    assert huge_row["stage"] in ("langid", "quality")
    # Filters off: it reaches MinHash and comes out whole.
    cfg = job("error", dedup={"enabled": True}, langid={"enabled": False},
              quality={"enabled": False})  # fmt: skip
    data, _, _ = assert_accounted(_run(root, tmp_path / "out2", cfg))
    kept = {r["id"]: r["text"] for r in data.to_pylist()}
    assert kept["huge"] == huge


def test_output_inside_the_input_is_refused(tmp_path):
    root = tmp_path / "in"
    good_file(root)
    for output in (root / "out", root, tmp_path):
        with pytest.raises(StorageError, match="overlaps the input"):
            run_job(str(root), str(output), job("error"))
    assert sorted(p.name for p in root.iterdir()) == ["a-good.parquet"]


def _run(root: Path, out: Path, cfg) -> Path:
    run_job(str(root), str(out), cfg)
    return out
