import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedupe_at_scale.io.output import OutputExistsError, OutputLayout
from dedupe_at_scale.io.storage import resolve


def layout(path):
    return OutputLayout(resolve(str(path)))


def test_complete_output_is_refused_without_overwrite(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "data").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        layout(tmp_path).prepare(overwrite=False, fingerprint="f")
    # With overwrite the old output stays readable until the new one is published.
    assert layout(tmp_path).prepare(overwrite=True, fingerprint="f") == "none"
    assert (tmp_path / "manifest.json").exists()


def test_leftovers_of_a_failed_run_are_cleared(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-00000-0.parquet").write_bytes(b"partial")
    (tmp_path / "_staging" / "annotated").mkdir(parents=True)
    (tmp_path / "_staging" / "annotated" / "x.parquet").write_bytes(b"partial")
    assert layout(tmp_path).prepare(overwrite=False, fingerprint="f") == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_staging"]
    # Only the new run's marker and its (empty) decisions directory.
    assert sorted(p.name for p in (tmp_path / "_staging").iterdir()) == ["decisions", "job.json"]
    assert not any((tmp_path / "_staging" / "decisions").iterdir())


def test_foreign_files_are_never_deleted(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="thesis.tex"):
        layout(tmp_path).prepare(overwrite=True, fingerprint="f")
    assert (tmp_path / "thesis.tex").exists()


def test_what_the_registered_steps_publish_is_the_job_s_own(tmp_path, monkeypatch):
    """An earlier run's step directories (splits/ from a config that had
    splits) are removed on --overwrite, whatever this run's config; a new
    step's directory is its own by its `publishes` alone, not by a list here."""
    from dedupe_at_scale import steps
    from dedupe_at_scale.steps.base import GlobalStep

    class Publishing(GlobalStep):
        name = "toy"
        publishes = ("toy_outputs",)

    monkeypatch.setattr(steps, "REGISTRY", [*steps.REGISTRY, Publishing])
    (tmp_path / "manifest.json").write_text("{}")
    for name in ("data", "splits", "duplicates", "toy_outputs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part-00000.parquet").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="toy_outputs"):
        layout(tmp_path).check(overwrite=True)  # without the steps' directories
    ours = OutputLayout(resolve(str(tmp_path)), steps.published_by_steps())
    ours.check(overwrite=True)
    (tmp_path / "manifest.json").unlink()  # a killed publish: shards, no manifest
    ours.prepare(overwrite=True, fingerprint="f")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_staging"]


def test_new_directory_is_created(tmp_path):
    layout(tmp_path / "a" / "b").prepare(overwrite=False, fingerprint="f")
    assert (tmp_path / "a" / "b").is_dir()


def _sealed_output(tmp_path, shards):
    out = layout(tmp_path)
    out.prepare(overwrite=True, fingerprint="f")
    for rel in shards:
        path = tmp_path / "_staging" / "publish" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [rel]}), path)
    return out, out.seal(shards, {"status": "complete", "shards": shards})


def test_a_publish_interrupted_anywhere_is_finished_by_the_next_run(tmp_path):
    shards = ["data/part-00000.parquet", "data/part-00001.parquet", "rejected/part-00000.parquet"]
    # An older output being overwritten, with a shard the new one does not have.
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["old"]}), tmp_path / "data" / "part-00000.parquet")
    pq.write_table(pa.table({"id": ["old"]}), tmp_path / "data" / "part-00009.parquet")
    (tmp_path / "manifest.json").write_text("{}")
    out, ready = _sealed_output(tmp_path, shards)
    # Killed after moving one shard: no manifest, the rest still staged.
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "_staging" / "publish" / shards[1]).rename(tmp_path / shards[1])

    assert layout(tmp_path).prepare(overwrite=False, fingerprint="f") == "publish"
    layout(tmp_path).publish(layout(tmp_path).read_ready())

    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert found == shards
    for rel in shards:
        assert pq.read_table(tmp_path / rel).column("id").to_pylist() == [rel]
    assert json.loads((tmp_path / "manifest.json").read_text())["shards"] == shards
    assert not (tmp_path / "_staging").exists()


def test_a_sealed_run_of_another_job_is_not_published(tmp_path):
    _sealed_output(tmp_path, ["data/part-00000.parquet"])
    assert layout(tmp_path).prepare(overwrite=False, fingerprint="other job") == "none"
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "_staging" / "ready.json").exists()


def test_an_interrupted_run_knows_whether_it_had_published(tmp_path):
    out = layout(tmp_path)
    staging = tmp_path / "_staging"
    staging.mkdir()
    assert not out.published_by_this_run()  # annotating, no output yet
    (tmp_path / "manifest.json").write_text("{}")
    assert not out.published_by_this_run()  # an older output, kept for --overwrite
    (staging / "ready.json").write_text("{}")
    assert out.published_by_this_run()  # the manifest written, _staging/ not yet removed
    for path in staging.iterdir():
        path.unlink()
    staging.rmdir()
    assert out.published_by_this_run()
