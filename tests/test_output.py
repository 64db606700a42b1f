import pytest

from dedupe_at_scale.output import OutputExistsError, OutputLayout
from dedupe_at_scale.storage import resolve


def layout(path):
    return OutputLayout(resolve(str(path)))


def test_complete_output_is_refused_without_overwrite(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "data").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        layout(tmp_path).prepare(overwrite=False)
    layout(tmp_path).prepare(overwrite=True)
    assert not (tmp_path / "manifest.json").exists()
    assert not (tmp_path / "data").exists()


def test_leftovers_of_a_failed_run_are_cleared(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-00000-0.parquet").write_bytes(b"partial")
    (tmp_path / "_staging").mkdir()
    layout(tmp_path).prepare(overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_foreign_files_are_never_deleted(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="thesis.tex"):
        layout(tmp_path).prepare(overwrite=True)
    assert (tmp_path / "thesis.tex").exists()


def test_new_directory_is_created(tmp_path):
    layout(tmp_path / "a" / "b").prepare(overwrite=False)
    assert (tmp_path / "a" / "b").is_dir()
